//! Where a restore writes a file before the file takes its name (spec section 8.8, step 4).
//!
//! A restore writes each file under a temporary name in the file's own directory and renames it
//! into place only once every blob of the file has been read and checked (section 8.6). A
//! failure part way (a damaged or missing blob, a full disk) therefore never leaves a partial
//! file under the name the snapshot gives it.
//!
//! This crate does not name, lock or clean up temporary files itself: the caller supplies a
//! [`Staging`] that does. The client's `scratch` module is the one the command line uses
//! (`.e2ee-backup-*.partial` files, removed on drop and on SIGINT or SIGTERM).

use std::fs::File;
use std::io;
use std::path::Path;

/// A file a restore is writing under a temporary name.
///
/// Dropped without [`persist`](StagedFile::persist), it MUST be removed: that is how a failed
/// restore leaves nothing behind.
pub trait StagedFile {
    /// The open file, to write the content and to set its mode and time.
    fn file_mut(&mut self) -> &mut File;

    /// Renames it onto `target`, failing (and removing it) if something is already there: a
    /// restore never replaces a file.
    fn persist(self: Box<Self>, target: &Path) -> io::Result<()>;
}

/// Makes the temporary files of a restore.
pub trait Staging {
    /// A new, empty temporary file in the directory `dir`, created exclusively (never through
    /// a file or link already there).
    fn create_in(&self, dir: &Path) -> io::Result<Box<dyn StagedFile>>;
}
