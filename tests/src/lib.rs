//! Helpers shared by the black-box tests: locating the built binaries and making scratch data directories.
