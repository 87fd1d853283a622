//! `e2ee-backup crypt15 ...` and `e2ee-backup convert`: WhatsApp Android backups (spec 6.2 the
//! key file, 6.6 decrypting, 6.7 encrypting).

use std::fs::File;
use std::io::{Seek, Write};
use std::path::Path;
use std::time::Instant;

use e2ee_backup_crypt15::{self as crypt15, Content, FileHeader, HeaderOptions, Variant};
use e2ee_backup_format::header::MAGIC;
use e2ee_backup_format::{Compression, Decryptor, EncryptOptions, Encryptor, Error};
use e2ee_backup_kdf::BackupKey;
use indicatif::{ProgressBar, ProgressBarIter};
use serde_json::json;

use crate::commands::required;
use crate::failure::Failure;
use crate::output::{AtomicOutput, Report, copy, progress, rate};

/// Opens a backup (crypt15 or native), `-` for standard input; a pipe is copied to an unnamed
/// temporary file first, since crypt15 reads its input twice: a directory or an empty file is
/// named as such.
fn open(path: &Path) -> Result<File, Failure> {
    crate::commands::open_backup_seekable(path).map(|(file, _)| file)
}

/// Another handle on `file`, from its first byte (the handles share one position: use one at
/// a time).
fn from_start(file: &File) -> Result<File, Failure> {
    let mut again = file.try_clone().map_err(|e| Failure::io("cannot read the input again", e))?;
    again.rewind().map_err(|e| Failure::io("cannot read the input again", e))?;
    Ok(again)
}

/// `file` from its start behind a progress bar (hidden unless standard error is a terminal).
/// crypt15 reads its input twice, checking everything before it decrypts anything, so the bar
/// runs through the file once per pass.
fn with_progress(
    file: &File,
    label: &'static str,
) -> Result<(ProgressBarIter<File>, ProgressBar), Failure> {
    let file = from_start(file)?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = progress(len, label);
    Ok((bar.wrap_read(file), bar))
}

fn variant_name(variant: Variant) -> &'static str {
    match variant {
        Variant::SingleFile => "single-file (zlib database, MD5 trailer)",
        Variant::MultiFile => "multi-file (ZIP, no MD5 trailer)",
    }
}

fn header_lines(header: &FileHeader) -> (Vec<String>, serde_json::Value) {
    let prefix = header.prefix();
    let info = prefix.info.clone().unwrap_or_default();
    let features: Vec<u32> = info.features.iter().filter(|&(_, on)| on).map(|(f, _)| f).collect();
    let lines = vec![
        format!(
            "header:         {} bytes ({} flag byte)",
            header.len(),
            if header.has_flag_byte() { "with" } else { "no" }
        ),
        format!(
            "key type:       {}",
            prefix.key_type.map_or("absent".to_owned(), |t| t.to_string())
        ),
        format!("iv:             {}", hex::encode(header.iv())),
        format!("app version:    {}", info.app_version.as_deref().unwrap_or("absent")),
        format!(
            "phone suffix:   {} (stored in clear by this format)",
            info.jid_suffix.as_deref().unwrap_or("absent")
        ),
        format!(
            "backup version: {}",
            info.backup_version.map_or("absent".to_owned(), |v| v.to_string())
        ),
        format!("features on:    {features:?}"),
    ];
    let json = json!({
        "headerBytes": header.len(), "flagByte": header.has_flag_byte(), "keyType": prefix.key_type,
        "iv": hex::encode(header.iv()), "appVersion": info.app_version, "phoneSuffix": info.jid_suffix,
        "backupVersion": info.backup_version, "featuresOn": features,
    });
    (lines, json)
}

pub fn inspect(input: &Path, key: Result<Option<BackupKey>, Failure>) -> Result<Report, Failure> {
    let key = key?;
    let file = open(input)?;
    let header = FileHeader::read_from(&mut from_start(&file)?)?;
    let (mut lines, mut json) = header_lines(&header);
    json["file"] = json!(input);
    match key {
        None => lines.push("verified:       no (pass --key-file or --key)".to_owned()),
        Some(key) => {
            let decryptor = crypt15::Decryptor::new(&key, from_start(&file)?)?;
            let variant = decryptor.variant();
            let plaintext = decryptor.decrypt_to(std::io::sink())?;
            lines.push(format!(
                "verified:       yes; {}; {plaintext} bytes of plaintext",
                variant_name(variant)
            ));
            json["verified"] = json!(true);
            json["multiFile"] = json!(variant == Variant::MultiFile);
            json["plaintextBytes"] = json!(plaintext);
        }
    }
    Ok(Report { lines, json })
}

pub fn decrypt(
    input: &Path,
    output: &Path,
    key: Result<Option<BackupKey>, Failure>,
    raw: bool,
    force: bool,
) -> Result<Report, Failure> {
    let key = required(key)?;
    let started = Instant::now();
    let (reader, bar) = with_progress(&open(input)?, "decrypting")?;
    let decryptor = crypt15::Decryptor::new(&key, reader)?;
    let variant = decryptor.variant();
    let mut out = AtomicOutput::create(output, force)?;
    let written =
        if raw { decryptor.decrypt_raw_to(&mut out)? } else { decryptor.decrypt_to(&mut out)? };
    bar.finish_and_clear();
    out.commit()?;
    let elapsed = started.elapsed();
    Ok(Report {
        lines: vec![format!(
            "decrypted {} ({}) into {} ({written} bytes) in {elapsed:.2?}, {}",
            input.display(),
            variant_name(variant),
            output.display(),
            rate(written, elapsed)
        )],
        json: json!({ "input": input, "output": output, "multiFile": variant == Variant::MultiFile, "plaintextBytes": written, "seconds": elapsed.as_secs_f64() }),
    })
}

pub struct EncryptArgs<'a> {
    pub input: &'a Path,
    pub output: &'a Path,
    pub key: Result<Option<BackupKey>, Failure>,
    pub multi_file: bool,
    pub level: u32,
    pub app_version: Option<String>,
    pub phone_suffix: Option<String>,
    pub force: bool,
}

pub fn encrypt(args: EncryptArgs<'_>) -> Result<Report, Failure> {
    let key = required(args.key)?;
    let (input, len) = crate::commands::open_stream(args.input)?;
    let header = FileHeader::minimal(&HeaderOptions {
        app_version: args.app_version,
        jid_suffix: args.phone_suffix,
        ..HeaderOptions::default()
    })?;
    let content = if args.multi_file {
        Content::MultiFileZip
    } else {
        Content::Database { level: args.level }
    };
    let mut out = AtomicOutput::create(args.output, args.force)?;
    let started = Instant::now();
    let bar = progress(len.unwrap_or(0), "encrypting");
    let mut encryptor = crypt15::Encryptor::new(&key, &header, content, &mut out)?;
    let read =
        copy(&mut bar.wrap_read(input), &mut encryptor).map_err(
            |e| match crypt15::Error::from_io(&e) {
                Some(inner) => inner.clone().into(),
                None => Failure::io("encryption failed", e),
            },
        )?;
    encryptor.finish()?;
    bar.finish_and_clear();
    out.commit()?;
    let elapsed = started.elapsed();
    Ok(Report {
        lines: vec![format!(
            "encrypted {} ({read} bytes) into {} in {elapsed:.2?}",
            args.input.display(),
            args.output.display()
        )],
        json: json!({ "input": args.input, "output": args.output, "plaintextBytes": read, "seconds": elapsed.as_secs_f64() }),
    })
}

/// Converts between crypt15 and the native format, in whichever direction the input's first
/// bytes call for. The plaintext only ever exists in memory, a buffer at a time, and only after
/// the input vouched for it: crypt15 verifies the whole file before decrypting, the native
/// reader verifies each chunk before releasing it.
pub fn convert(
    input: &Path,
    output: &Path,
    key: Result<Option<BackupKey>, Failure>,
    compress: bool,
    force: bool,
) -> Result<Report, Failure> {
    let key = required(key)?;
    let file = open(input)?;
    let mut magic = [0u8; 8];
    let is_native = {
        use std::io::Read;
        from_start(&file)?.read(&mut magic).map_err(|e| Failure::io("cannot read the input", e))?
            == 8
            && magic == MAGIC
    };
    let started = Instant::now();
    let mut out = AtomicOutput::create(output, force)?;
    let (reader, bar) = with_progress(&file, "converting")?;
    let (direction, bytes) = if is_native {
        let mut decryptor = Decryptor::new(reader, &key)?;
        let header = FileHeader::minimal(&HeaderOptions::default())?;
        let mut encryptor = crypt15::Encryptor::new(&key, &header, Content::default(), &mut out)?;
        let bytes = copy(&mut decryptor, &mut encryptor).map_err(|e| {
            if let Some(inner) = Error::from_io(&e) {
                return Failure::from(inner.clone());
            }
            match crypt15::Error::from_io(&e) {
                Some(inner) => inner.clone().into(),
                None => Failure::io("conversion failed", e),
            }
        })?;
        encryptor.finish()?;
        ("native to crypt15", bytes)
    } else {
        let decryptor = crypt15::Decryptor::new(&key, reader)?;
        if decryptor.variant() == Variant::MultiFile {
            return Err(Failure::usage(
                "multi-file",
                "multi-file crypt15 backups hold a ZIP; decrypt it with `crypt15 decrypt` instead",
            ));
        }
        let mut options = EncryptOptions::default();
        options.compression = if compress { Compression::Zstd } else { Compression::None };
        let mut encryptor = Encryptor::new(&mut out, &key, options)?;
        let bytes = decryptor.decrypt_to(&mut encryptor)?;
        encryptor.flush().map_err(|e| Failure::io("conversion failed", e))?;
        encryptor.finish()?;
        ("crypt15 to native", bytes)
    };
    bar.finish_and_clear();
    out.commit()?;
    let elapsed = started.elapsed();
    Ok(Report {
        lines: vec![format!(
            "converted {} into {} ({direction}, {bytes} bytes of plaintext, none written to disk) in {elapsed:.2?}, {}",
            input.display(),
            output.display(),
            rate(bytes, elapsed)
        )],
        json: json!({ "input": input, "output": output, "direction": direction, "plaintextBytes": bytes, "seconds": elapsed.as_secs_f64() }),
    })
}
