//! `report RUN --html FILE` and `run --html FILE`: the page of [`crate::html`] written to a file
//! (by rename) or to stdout.

use super::outfile::Target;
use crate::error::Error;
use crate::report::Report;
use crate::store::RunDir;

/// Writes the HTML report of `run` to `target` and says where on stderr.
pub(super) fn write(report: &Report, run: &RunDir, program: &str, target: &Target) -> Result<(), Error> {
    let page = crate::html::render(report, run, program, &crate::html::Extras::default());
    target.write("--html", |out| out.write_all(page.as_bytes()))?;
    if let Target::File(path) = target {
        eprintln!("wrote the HTML report to {} ({} KB)", path.display(), page.len().div_ceil(1024));
    }
    Ok(())
}
