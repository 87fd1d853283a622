//! What the tests share: a [`Staging`] over `tempfile`, for restores (spec 8.8). The command
//! line uses the client's `scratch` module instead.

use std::fs::File;
use std::io;
use std::path::Path;

use e2ee_backup_snapshot::{StagedFile, Staging};

/// The temporary files' names start with this, so that a test can look for leftovers.
pub const TEMP_PREFIX: &str = ".staged-";

/// Stages each restored file as a `tempfile::NamedTempFile` (removed when dropped).
pub struct Temps;

struct Temp(tempfile::NamedTempFile);

impl Staging for Temps {
    fn create_in(&self, dir: &Path) -> io::Result<Box<dyn StagedFile>> {
        Ok(Box::new(Temp(tempfile::Builder::new().prefix(TEMP_PREFIX).tempfile_in(dir)?)))
    }
}

impl StagedFile for Temp {
    fn file_mut(&mut self) -> &mut File {
        self.0.as_file_mut()
    }

    fn persist(self: Box<Self>, target: &Path) -> io::Result<()> {
        self.0.persist_noclobber(target).map(drop).map_err(|e| e.error)
    }
}
