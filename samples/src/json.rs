//! An ordered JSON tree. Objects keep insertion order (as the AWS CLI prints them) whatever
//! features of `serde_json` other crates switch on, so the output bytes are stable.

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum J {
    Bool(bool),
    Num(i64),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl Serialize for J {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            J::Bool(b) => s.serialize_bool(*b),
            J::Num(n) => s.serialize_i64(*n),
            J::Str(x) => s.serialize_str(x),
            J::Arr(xs) => {
                let mut seq = s.serialize_seq(Some(xs.len()))?;
                for x in xs {
                    seq.serialize_element(x)?;
                }
                seq.end()
            }
            J::Obj(kvs) => {
                let mut m = s.serialize_map(Some(kvs.len()))?;
                for (k, v) in kvs {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
        }
    }
}

impl From<&str> for J {
    fn from(s: &str) -> J {
        J::Str(s.to_string())
    }
}
impl From<String> for J {
    fn from(s: String) -> J {
        J::Str(s)
    }
}
impl From<&String> for J {
    fn from(s: &String) -> J {
        J::Str(s.clone())
    }
}
impl From<bool> for J {
    fn from(b: bool) -> J {
        J::Bool(b)
    }
}
impl From<i64> for J {
    fn from(n: i64) -> J {
        J::Num(n)
    }
}
impl From<usize> for J {
    fn from(n: usize) -> J {
        J::Num(n as i64)
    }
}
impl From<Vec<J>> for J {
    fn from(v: Vec<J>) -> J {
        J::Arr(v)
    }
}

/// `jobj!{"Key" => value, ...}`: an object with keys in the order written.
macro_rules! jobj {
    ($($k:expr => $v:expr),* $(,)?) => {
        $crate::json::J::Obj(vec![$(($k.to_string(), $crate::json::J::from($v))),*])
    };
}
pub(crate) use jobj;

/// A list of strings; a single element stays a plain string, as people write policies.
pub(crate) fn list<S: AsRef<str>>(xs: &[S]) -> J {
    if xs.len() == 1 {
        J::Str(xs[0].as_ref().to_string())
    } else {
        J::Arr(xs.iter().map(|x| J::Str(x.as_ref().to_string())).collect())
    }
}

/// Always an array of strings.
pub(crate) fn arr<S: AsRef<str>>(xs: &[S]) -> J {
    J::Arr(xs.iter().map(|x| J::Str(x.as_ref().to_string())).collect())
}

impl J {
    pub(crate) fn get(&self, key: &str) -> Option<&J> {
        match self {
            J::Obj(kvs) => kvs.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut J> {
        match self {
            J::Obj(kvs) => kvs.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The strings of a string or an array of strings.
    pub(crate) fn strs(&self) -> Vec<&str> {
        match self {
            J::Str(s) => vec![s.as_str()],
            J::Arr(xs) => xs
                .iter()
                .filter_map(|x| match x {
                    J::Str(s) => Some(s.as_str()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Pretty-printed like the AWS CLI (`--output json`): 4-space indent.
pub(crate) fn pretty(v: &J) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    v.serialize(&mut ser)
        .expect("serializing to memory cannot fail");
    out
}
