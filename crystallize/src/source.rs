//! Where the parts of an experiment are defined in the user's code ([`Location`]), and the
//! identity of a `#[step]` ([`StepInfo`]): plain data that the registry collects and that step
//! messages carry to observers.

use std::fmt;

use serde::Serialize;

/// Where a part is defined in the user's code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Location {
    /// `module_path!()` of the part.
    pub module_path: &'static str,
    /// `file!()` of the part.
    pub file: &'static str,
    /// The line of the part's name.
    pub line: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// A `#[step]`.
#[derive(Debug)]
pub struct StepInfo {
    /// The function's name.
    pub name: &'static str,
    /// Where it is defined.
    pub location: Location,
    /// A hash of its tokens; changes whenever its code changes.
    pub fingerprint: u64,
    /// The limit the step holds while it runs (`#[step(limit = "ollama")]`).
    pub limit: Option<&'static str>,
    /// How its outputs are cached (`#[step(cache)]`); `None`: they are not.
    pub cache: Option<&'static crate::cache::CacheSpec>,
}
