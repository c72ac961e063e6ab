//! Files a command writes for the user (`export --csv FILE`, `report --html FILE`): checked to
//! be writable before anything is computed or run, written whole by a rename so that a reader
//! never sees half a file, and `-` meaning stdout.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::Error;

/// Where a command writes one of its outputs.
#[derive(Clone, Debug)]
pub(super) enum Target {
    /// Standard output (`-`).
    Stdout,
    /// A file.
    File(PathBuf),
}

impl Target {
    /// The target `path` names; `flag` is the option it was given to (for errors).
    pub(super) fn of(path: &Path) -> Target {
        if path == Path::new("-") {
            Target::Stdout
        } else {
            Target::File(path.to_owned())
        }
    }

    /// Fails (exit 2) unless the file can be written: its directory exists and the file can be
    /// created there. Leaves nothing behind that was not there before.
    pub(super) fn check(&self, flag: &str) -> Result<(), Error> {
        let Target::File(path) = self else { return Ok(()) };
        let bad = |why: String| Error::BadOption { option: flag.to_owned(), value: path.display().to_string(), why };
        if path.is_dir() {
            return Err(bad("it is a directory; give a file name, e.g. report.html".into()));
        }
        let existed = path.exists();
        match std::fs::OpenOptions::new().create(true).append(true).open(path) {
            Ok(_) => {
                if !existed {
                    let _ = std::fs::remove_file(path);
                }
                Ok(())
            }
            Err(error) => {
                let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
                let why = if !parent.is_dir() {
                    format!("the directory {} does not exist; create it or write elsewhere", parent.display())
                } else {
                    format!("cannot write the file ({error}); choose a path in a directory you can write")
                };
                Err(bad(why))
            }
        }
    }

    /// Writes what `fill` produces, to stdout or to the file (through a temporary file beside it
    /// and a rename).
    pub(super) fn write(
        &self,
        flag: &str,
        fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<(), Error> {
        match self {
            Target::Stdout => {
                let mut out = std::io::stdout().lock();
                // A closed stdout (`| head`) is the reader's choice, not an error.
                let _ = fill(&mut out).and_then(|()| out.flush());
                Ok(())
            }
            Target::File(path) => {
                let failed = |error: std::io::Error| Error::BadOption {
                    option: flag.to_owned(),
                    value: path.display().to_string(),
                    why: format!("cannot write the file: {error}"),
                };
                let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
                name.push(format!(".{}.tmp", std::process::id()));
                let temporary = path.with_file_name(name);
                let result = (|| {
                    let mut file = std::io::BufWriter::new(std::fs::File::create(&temporary)?);
                    fill(&mut file)?;
                    file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
                    std::fs::rename(&temporary, path)
                })();
                if result.is_err() {
                    let _ = std::fs::remove_file(&temporary);
                }
                result.map_err(failed)
            }
        }
    }
}
