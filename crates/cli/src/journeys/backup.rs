//! `backup`: one file or standard input into the store as a native-format backup (spec 5.3,
//! 5.8; 5.6.3 for the refusal when another device rotated the key).

use std::fs;
use std::io::{self, BufRead, Read};
use std::time::Instant;

use e2ee_backup_client::Source;
use serde_json::json;

use super::BackupArgs;
use crate::failure::Failure;
use crate::output::{Report, is_stdio, rate};

pub fn backup(args: &BackupArgs) -> Result<Report, Failure> {
    let directory = !is_stdio(&args.file) && args.file.is_dir();
    let excluding = !args.exclude.is_empty() || !args.exclude_file.is_empty();
    if excluding && !directory {
        return Err(Failure::usage(
            "usage",
            "--exclude and --exclude-file apply to a directory backup only",
        ));
    }
    let (mut client, _) = args.client.open()?;
    if directory {
        let excludes = crate::snapshots::excludes(&args.exclude, &args.exclude_file)?;
        let options =
            crate::snapshots::DirOptions { uploads: args.uploads.into(), force: args.force };
        return crate::snapshots::backup(&client, &args.file, excludes, options);
    }
    let stdin = is_stdio(&args.file);
    let name = match &args.name {
        Some(name) => name.clone(),
        None if stdin => "stdin".to_owned(),
        None => args
            .file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "backup".to_owned()),
    };
    let refuse_empty = |what: String| {
        Failure::usage(
            "empty-backup",
            format!(
                "{what} is empty: as the newest backup it would be restored instead of the real \
                 ones before it. Nothing was stored; pass --allow-empty to back it up anyway"
            ),
        )
    };
    let started = Instant::now();
    let (info, plaintext, empty) = if stdin {
        // Standard input is read once, as it comes: an empty one is known before anything
        // is uploaded by looking at its first bytes.
        let mut input = io::BufReader::with_capacity(1 << 16, io::stdin().lock());
        let empty =
            input.fill_buf().map_err(|e| Failure::io("cannot read standard input", e))?.is_empty();
        if empty && !args.allow_empty {
            return Err(refuse_empty("standard input".to_owned()));
        }
        let mut counted = Counted { inner: input, bytes: 0 };
        let info = client.create_backup(Source::Reader(&mut counted), &name)?;
        (info, counted.bytes, empty)
    } else {
        let metadata = fs::metadata(&args.file)
            .map_err(|e| Failure::io(&format!("cannot read {}", args.file.display()), e))?;
        let empty = metadata.is_file() && metadata.len() == 0;
        if empty && !args.allow_empty {
            return Err(refuse_empty(args.file.display().to_string()));
        }
        (client.create_backup(Source::Path(&args.file), &name)?, metadata.len(), empty)
    };
    let elapsed = started.elapsed();
    let mut lines = vec![format!(
        "backed up {} ({plaintext} bytes) as {name:?}: {} bytes encrypted (zstd) stored as {} \
         in {elapsed:.2?}, {}",
        args.file.display(),
        info.size,
        info.object,
        rate(plaintext, elapsed)
    )];
    let mut json = json!({
        "file": args.file, "name": name, "plaintextBytes": plaintext, "object": info.object,
        "objectBytes": info.size, "seconds": elapsed.as_secs_f64(),
    });
    if empty {
        let warning = "warning: this backup is empty, and a restore picks it over the older ones";
        lines.push(warning.to_owned());
        json["warning"] = json!(warning);
    }
    Ok(Report { lines, json })
}

/// Counts the bytes read through it.
struct Counted<R> {
    inner: R,
    bytes: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}
