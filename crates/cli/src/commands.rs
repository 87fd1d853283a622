//! The key-mode commands: keygen (spec 2.1, 2.2), encrypt (3.5), decrypt (3.6), inspect (3.2, 3.3).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Read, Seek, Write};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use e2ee_backup_format::{
    Compression, Decryptor, EncryptOptions, Encryptor, Error, Metadata, read_header,
};
use e2ee_backup_kdf::schedule::KeyId;
use e2ee_backup_kdf::{BackupKey, digits};
use serde_json::json;
use zeroize::Zeroizing;

use crate::failure::Failure;
use crate::output::{AtomicOutput, Report, copy, is_stdio, progress, rate};

/// A key file holds 64 digits and separators; anything much longer is not a key file.
const MAX_KEY_FILE_LEN: u64 = 4096;

/// The key from `--key-file`, `--key`, or (when `prompt`) the terminal.
pub fn key_from(
    file: Option<&Path>,
    text: Option<&str>,
    prompt: bool,
) -> Result<Option<BackupKey>, Failure> {
    if let Some(path) = file {
        let mut contents = Zeroizing::new(Vec::new());
        File::open(path)
            .and_then(|f| f.take(MAX_KEY_FILE_LEN).read_to_end(&mut contents))
            .map_err(|e| Failure::io(&format!("cannot read the key file {}", path.display()), e))?;
        // WhatsApp's `encrypted_backup.key` is a Java-serialised byte array: it starts AC ED.
        if contents.starts_with(&[0xac, 0xed]) {
            return e2ee_backup_crypt15::keyfile::parse(&contents).map(Some).map_err(|e| {
                Failure::usage(
                    "invalid-key",
                    format!("{} is not a valid encrypted_backup.key: {e}", path.display()),
                )
            });
        }
        let text = std::str::from_utf8(&contents).map_err(|_| {
            Failure::usage(
                "invalid-key",
                format!(
                    "{} holds neither a 64-digit key nor an encrypted_backup.key",
                    path.display()
                ),
            )
        })?;
        return Ok(Some(digits::parse(text.trim())?));
    }
    if let Some(text) = text {
        return Ok(Some(digits::parse(text.trim())?));
    }
    if !prompt {
        return Ok(None);
    }
    if !io::stdin().is_terminal() {
        return Err(Failure::usage("no-key", "no key given: pass --key-file FILE or --key DIGITS"));
    }
    let typed = Zeroizing::new(
        rpassword::prompt_password("Backup key (64 digits): ")
            .map_err(|e| Failure::io("cannot read the key", e))?,
    );
    Ok(Some(digits::parse(typed.trim())?))
}

/// Opens a file the command reads, naming it in every failure (reading a directory would
/// otherwise fail later with a bare "Is a directory"). Returns its size when it is a regular
/// file.
pub fn open_input(path: &Path) -> Result<(File, Option<u64>), Failure> {
    let file =
        File::open(path).map_err(|e| Failure::io(&format!("cannot open {}", path.display()), e))?;
    let metadata =
        file.metadata().map_err(|e| Failure::io(&format!("cannot read {}", path.display()), e))?;
    if metadata.is_dir() {
        return Err(Failure::other(
            "io",
            format!("cannot read {}: it is a directory, not a file", path.display()),
        ));
    }
    Ok((file, metadata.is_file().then_some(metadata.len())))
}

/// Opens a backup file (native or crypt15) as [`open_input`] does; an empty file is reported as
/// empty, not as a backup cut off after 0 bytes.
pub fn open_backup(path: &Path) -> Result<(File, Option<u64>), Failure> {
    let (file, len) = open_input(path)?;
    not_empty(path, len)?;
    Ok((file, len))
}

/// How an input is named in messages.
fn input_name(path: &Path) -> String {
    if is_stdio(path) { "standard input".into() } else { path.display().to_string() }
}

fn not_empty(path: &Path, len: Option<u64>) -> Result<(), Failure> {
    if len != Some(0) {
        return Ok(());
    }
    let message = format!("{} is empty (0 bytes): it is not a backup.", input_name(path));
    Err(Failure::with_exit("not-a-backup", message, 4))
}

/// [`open_backup`] for the readers that go through their input twice or jump in it (crypt15
/// checks a whole file before it decrypts any of it; `inspect` reads the header before it
/// verifies): `-` (standard input), or a file that is not a regular one (a named pipe), is
/// first copied into a temporary file that has no name on disk (`O_TMPFILE`, or unlinked at
/// once), so that nothing is left behind however the process ends. The copy holds the input as
/// given: a backup, that is ciphertext, never plaintext. Returns the file and its length.
pub fn open_backup_seekable(path: &Path) -> Result<(File, u64), Failure> {
    let (input, len) = open_stream(path)?;
    let (file, len) = match (input, len) {
        (Input::File(file), Some(len)) => (file, len),
        (mut input, _) => {
            let name = input_name(path);
            let cannot_read = |e| Failure::io(&format!("cannot read {name}"), e);
            let mut copy = tempfile::tempfile()
                .map_err(|e| Failure::io(&format!("cannot make a temporary copy of {name}"), e))?;
            let len = io::copy(&mut input, &mut copy).map_err(cannot_read)?;
            copy.rewind().map_err(cannot_read)?;
            (copy, len)
        }
    };
    not_empty(path, Some(len))?;
    Ok((file, len))
}

/// A command's input: a file, or standard input for `-`.
pub enum Input {
    File(File),
    Stdin(io::Stdin),
}

impl Read for Input {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Input::File(file) => file.read(buf),
            Input::Stdin(stdin) => stdin.read(buf),
        }
    }
}

/// [`open_input`], or standard input for `-` (whose size is unknown).
pub fn open_stream(path: &Path) -> Result<(Input, Option<u64>), Failure> {
    if is_stdio(path) {
        return Ok((Input::Stdin(io::stdin()), None));
    }
    open_input(path).map(|(file, len)| (Input::File(file), len))
}

/// [`open_backup`], or standard input for `-`.
pub fn open_backup_stream(path: &Path) -> Result<(Input, Option<u64>), Failure> {
    if is_stdio(path) {
        return Ok((Input::Stdin(io::stdin()), None));
    }
    open_backup(path).map(|(file, len)| (Input::File(file), len))
}

pub fn required(key: Result<Option<BackupKey>, Failure>) -> Result<BackupKey, Failure> {
    key?.ok_or_else(|| Failure::usage("no-key", "no key given"))
}

/// Draws a key; prints it, or with `out` writes it there and prints only the file and the key
/// id (the key too with `show`), so that it does not stay in a terminal's scrollback.
pub fn keygen(out: Option<&Path>, force: bool, show: bool) -> Result<Report, Failure> {
    let key = BackupKey::generate();
    let display = digits::to_display(&key);
    if let Some(path) = out {
        let mut options = OpenOptions::new();
        options.write(true);
        if force {
            options.create(true).truncate(true);
        } else {
            options.create_new(true);
        }
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => Failure::usage(
                "output-exists",
                format!("{} exists; pass --force to replace it", path.display()),
            ),
            _ => Failure::io(&format!("cannot create {}", path.display()), e),
        })?;
        file.write_all(format!("{}\n", display.as_str()).as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| Failure::io(&format!("cannot write {}", path.display()), e))?;
    }
    let key_id = hex::encode(KeyId::of(&key).0);
    let show = show || out.is_none();
    let mut lines = Vec::new();
    if show {
        lines.push(display.to_string());
    }
    let mut json = json!({ "keyId": key_id, "file": out });
    if let Some(path) = out {
        lines.push(format!(
            "{} {}, readable by you only (key id {key_id}){}",
            if show { "(also written to" } else { "wrote a new backup key to" },
            path.display(),
            if show { ")" } else { "; --show also prints it" }
        ));
    }
    if show {
        json["key"] = json!(display.as_str());
    }
    Ok(Report { lines, json })
}

pub struct EncryptArgs<'a> {
    pub input: &'a Path,
    pub output: &'a Path,
    pub key: Result<Option<BackupKey>, Failure>,
    pub compress: bool,
    pub chunk_size_log2: u8,
    pub fields: Vec<(String, String)>,
    pub force: bool,
}

pub fn encrypt(args: EncryptArgs<'_>) -> Result<Report, Failure> {
    let key = required(args.key)?;
    let (input, len) = open_stream(args.input)?;
    let mut out = AtomicOutput::create(args.output, args.force)?;
    let mut options = EncryptOptions::default();
    options.compression = if args.compress { Compression::Zstd } else { Compression::None };
    options.chunk_size_log2 = args.chunk_size_log2;
    options.metadata.plaintext_len = len;
    options.metadata.fields = args.fields.into_iter().collect::<BTreeMap<_, _>>();
    let started = Instant::now();
    let bar = progress(len.unwrap_or(0), "encrypting");
    let mut encryptor = Encryptor::new(&mut out, &key, options)?;
    let read =
        copy(&mut bar.wrap_read(input), &mut encryptor).map_err(|e| match Error::from_io(&e) {
            Some(inner) => inner.clone().into(),
            None => Failure::io("encryption failed", e),
        })?;
    encryptor.finish()?;
    bar.finish_and_clear();
    let written = out.written();
    out.commit()?;
    let elapsed = started.elapsed();
    Ok(Report {
        lines: vec![format!(
            "encrypted {} ({read} bytes) into {} ({written} bytes) in {:.2?}, {}",
            args.input.display(),
            args.output.display(),
            elapsed,
            rate(read, elapsed)
        )],
        json: json!({ "input": args.input, "output": args.output, "plaintextBytes": read, "fileBytes": written, "seconds": elapsed.as_secs_f64() }),
    })
}

/// Decrypts `input` into `sink`, verifying everything; returns the metadata, the plaintext
/// length and the time taken.
pub fn restore(
    input: &Path,
    key: &BackupKey,
    sink: &mut impl Write,
) -> Result<(Metadata, u64, Duration), Failure> {
    let (file, file_len) = open_backup_stream(input)?;
    decrypt_from(input, file, file_len, key, sink)
}

/// Decrypts `file`, the backup named `input`, into `sink`, verifying every chunk.
fn decrypt_from(
    input: &Path,
    file: impl Read + Send,
    file_len: Option<u64>,
    key: &BackupKey,
    sink: &mut impl Write,
) -> Result<(Metadata, u64, Duration), Failure> {
    let file_len = file_len.unwrap_or(0);
    let started = Instant::now();
    let bar = progress(file_len, "decrypting");
    let mut decryptor =
        Decryptor::new(bar.wrap_read(file), key).map_err(|e| with_crypt15_hint(input, e))?;
    let written = copy(&mut decryptor, sink).map_err(|e| match Error::from_io(&e) {
        Some(inner) => inner.clone().into(),
        None => Failure::io("decryption failed", e),
    })?;
    bar.finish_and_clear();
    Ok((decryptor.metadata().clone(), written, started.elapsed()))
}

/// The failure for `err` on `input`, with a hint when `input` is not in this format but looks
/// like a WhatsApp `.crypt15` backup.
fn with_crypt15_hint(input: &Path, err: Error) -> Failure {
    let not_native = matches!(err, Error::NotABackup);
    let mut failure = Failure::from(err);
    if not_native && looks_like_crypt15(input) {
        failure.message.push_str(
            " It looks like a WhatsApp .crypt15 backup: `e2ee-backup crypt15 decrypt` decrypts \
             it, `e2ee-backup convert` turns it into this format.",
        );
    }
    failure
}

/// Whether `path` is named like a `.crypt15` file or opens as one (its header parses).
fn looks_like_crypt15(path: &Path) -> bool {
    if is_stdio(path) {
        return false;
    }
    let named = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("crypt15"));
    named
        || File::open(path)
            .is_ok_and(|mut file| e2ee_backup_crypt15::FileHeader::read_from(&mut file).is_ok())
}

pub fn decrypt(
    input: &Path,
    output: &Path,
    key: Result<Option<BackupKey>, Failure>,
    force: bool,
) -> Result<Report, Failure> {
    let key = required(key)?;
    let mut out = AtomicOutput::create(output, force)?;
    let (metadata, written, elapsed) = restore(input, &key, &mut out)?;
    out.commit()?;
    let mut lines = vec![format!(
        "restored {} ({written} bytes) into {} in {:.2?}, {}",
        input.display(),
        output.display(),
        elapsed,
        rate(written, elapsed)
    )];
    lines.extend(describe_metadata(&metadata));
    Ok(Report {
        lines,
        json: json!({ "input": input, "output": output, "plaintextBytes": written, "seconds": elapsed.as_secs_f64(), "metadata": metadata_json(&metadata) }),
    })
}

pub fn inspect(input: &Path, key: Result<Option<BackupKey>, Failure>) -> Result<Report, Failure> {
    let key = key?;
    let (mut file, file_len) = open_backup_seekable(input)?;
    let header = read_header(&mut file).map_err(|e| with_crypt15_hint(input, e))?;
    let mut lines = vec![
        format!("file:           {} ({file_len} bytes)", input.display()),
        "format:         e2ee-backups v1".to_owned(),
        format!("compression:    {}", header.compression.name()),
        format!("chunk size:     {} bytes", header.chunk_size()),
        format!("key id:         {}", hex::encode(header.key_id.0)),
        format!("metadata block: {} bytes (encrypted)", header.metadata_len),
    ];
    let mut json = json!({
        "file": input, "fileBytes": file_len, "version": 1,
        "compression": header.compression.name(), "chunkSize": header.chunk_size(),
        "keyId": hex::encode(header.key_id.0), "metadataBytes": header.metadata_len,
    });
    match key {
        None => lines.push(
            "verified:       no (pass --key-file or --key to verify and read the metadata)"
                .to_owned(),
        ),
        Some(key) => {
            file.rewind().map_err(|e| Failure::io("cannot read the backup again", e))?;
            let (metadata, plaintext, _) =
                decrypt_from(input, file, Some(file_len), &key, &mut io::sink())?;
            lines.push(format!("verified:       yes, every chunk; {plaintext} bytes of plaintext"));
            lines.extend(describe_metadata(&metadata));
            json["verified"] = json!(true);
            json["plaintextBytes"] = json!(plaintext);
            json["metadata"] = metadata_json(&metadata);
        }
    }
    Ok(Report { lines, json })
}

fn created(metadata: &Metadata) -> String {
    let time = UNIX_EPOCH + Duration::from_secs(metadata.created_at);
    if time > SystemTime::now() + Duration::from_secs(100 * 365 * 86400) {
        return format!("{} (seconds since 1970)", metadata.created_at);
    }
    humantime::format_rfc3339_seconds(time).to_string()
}

fn describe_metadata(metadata: &Metadata) -> Vec<String> {
    let mut lines = vec![format!("created:        {}", created(metadata))];
    for (name, value) in &metadata.fields {
        lines.push(format!("field:          {name} = {value}"));
    }
    lines
}

fn metadata_json(metadata: &Metadata) -> serde_json::Value {
    json!({ "createdAt": metadata.created_at, "created": created(metadata), "plaintextLen": metadata.plaintext_len, "fields": metadata.fields })
}
