//! Accessflow core library.
