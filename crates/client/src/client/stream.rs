//! The streaming copy that backups, restores and rotations share: a fixed buffer between a
//! reader and a writer, so memory stays bounded whatever a backup's size (spec section 5.8),
//! and the line between a damaged backup and a failed download.

use std::io::{self, Read, Write};

use super::{Progress, ProgressNotice};

/// Counts a copy's bytes and tells the caller's [`ProgressNotice`], if there is one.
pub(super) struct Meter<'a> {
    notice: Option<&'a ProgressNotice>,
    operation: &'static str,
    total: Option<u64>,
    done: u64,
}

impl<'a> Meter<'a> {
    pub(super) fn new(
        notice: Option<&'a ProgressNotice>,
        operation: &'static str,
        total: Option<u64>,
    ) -> Self {
        Self { notice, operation, total, done: 0 }
    }

    fn advance(&mut self, bytes: usize) {
        self.done += bytes as u64;
        if let Some(notice) = self.notice {
            notice(Progress { operation: self.operation, done: self.done, total: self.total });
        }
    }
}

/// Where a [`pump`] failed.
pub(super) enum Pump {
    /// Reading its input.
    Read(io::Error),
    /// Writing its output.
    Write(io::Error),
}

/// Copies `input` to `output` through a buffer of [`PUMP_BUFFER`] bytes, telling `meter`
/// after each buffer.
pub(super) fn pump(
    input: &mut dyn Read,
    output: &mut dyn Write,
    meter: &mut Meter<'_>,
) -> std::result::Result<u64, Pump> {
    let mut buffer = vec![0u8; PUMP_BUFFER];
    let mut total = 0u64;
    loop {
        let n = match input.read(&mut buffer) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(Pump::Read(err)),
        };
        output.write_all(&buffer[..n]).map_err(Pump::Write)?;
        total += n as u64;
        meter.advance(n);
    }
}

/// The buffer of [`pump`].
const PUMP_BUFFER: usize = 64 * 1024;

/// A decryption failure that shows the backup is damaged, or (`Err`) an I/O failure that does
/// not: reading the download failed, which is retryable and says nothing about the backup.
pub(super) fn damage(
    reason: e2ee_backup_format::Error,
) -> std::result::Result<e2ee_backup_format::Error, io::Error> {
    match reason {
        e2ee_backup_format::Error::Io { kind, message } => Err(io::Error::new(kind, message)),
        reason => Ok(reason),
    }
}
