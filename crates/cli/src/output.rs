//! The edges: output files that appear only when complete, progress bars, reports (spec 5.8.1:
//! what an interrupted process leaves behind).

use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use e2ee_backup_client::scratch::{self, TempFile};
use e2ee_backup_snapshot::{BackupPhase, BackupProgress, BackupProgressFn};
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::failure::Failure;

/// `--quiet`, for what prints status lines outside a report (the vault's retry notices).
pub static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Tells the user that a vault request or store call that did nothing is tried again (issue
/// 11, spec 5.3.3), on standard error, unless `--quiet`.
pub fn retry_notice() -> e2ee_backup_client::RetryNotice {
    std::sync::Arc::new(|attempt, of, wait, why| {
        if !QUIET.load(std::sync::atomic::Ordering::Relaxed) {
            eprintln!(
                "e2ee-backup: nothing was done; retrying ({attempt}/{of}) in {:.2} s. The last try: {why}",
                wait.as_secs_f64()
            );
        }
    })
}

/// Draws the client's [`Progress`](e2ee_backup_client::Progress) as a bar on standard error
/// (a byte counter when the length is not known ahead): only on a terminal, and not with
/// `--quiet`. A new bar starts for each copy (each backup a rotation re-encrypts).
pub fn progress_notice() -> e2ee_backup_client::ProgressNotice {
    if !bars_shown() {
        return std::sync::Arc::new(|_| {});
    }
    let current: std::sync::Mutex<Option<(ProgressBar, u64)>> = std::sync::Mutex::default();
    std::sync::Arc::new(move |p: e2ee_backup_client::Progress| {
        let mut current = current.lock().unwrap_or_else(|e| e.into_inner());
        if current.as_ref().is_none_or(|(_, last)| p.done < *last) {
            if let Some((old, _)) = current.take() {
                old.finish_and_clear();
            }
            let label = match p.operation {
                "backup" => "encrypting",
                "restore" => "decrypting",
                _ => "re-keying",
            };
            // Cleared, not left behind, when the client (and with it this bar) is dropped.
            let bar = match p.total {
                Some(total) => progress(total, label),
                None => counter(label),
            }
            .with_finish(indicatif::ProgressFinish::AndClear);
            *current = Some((bar, 0));
        }
        if let Some((bar, last)) = current.as_mut() {
            bar.set_position(p.done);
            *last = p.done;
            if p.total == Some(p.done) {
                bar.finish_and_clear();
            }
        }
    })
}

/// Whether progress bars are drawn: only on a terminal, and never with `--quiet`.
fn bars_shown() -> bool {
    io::stderr().is_terminal() && !QUIET.load(std::sync::atomic::Ordering::Relaxed)
}

/// Draws a snapshot backup's progress (spec 8.7) on standard error, only on a terminal and not
/// with `--quiet` (`None` otherwise): a count of the entries found while the tree is listed,
/// then a bar over the bytes to read with the files done and the bytes new and reused. Cleared
/// when the last handle on it is dropped.
pub fn snapshot_progress() -> Option<BackupProgressFn> {
    if !bars_shown() {
        return None;
    }
    let bar = ProgressBar::new_spinner().with_finish(indicatif::ProgressFinish::AndClear);
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} {spinner} {pos} entries")
            .expect("the template is valid"),
    );
    bar.set_message("scanning");
    bar.enable_steady_tick(Duration::from_millis(200));
    let uploading = std::sync::atomic::AtomicBool::new(false);
    Some(std::sync::Arc::new(move |p: &BackupProgress| match p.phase {
        BackupPhase::Scanning => bar.set_position(p.entries),
        BackupPhase::Uploading => {
            if !uploading.swap(true, std::sync::atomic::Ordering::Relaxed) {
                bar.set_style(
                    ProgressStyle::with_template(
                        "{msg:>10} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} \
                         {prefix}",
                    )
                    .expect("the template is valid")
                    .progress_chars("=> "),
                );
                bar.set_message("backing up");
                bar.set_length(p.bytes_total);
            }
            bar.set_position(p.bytes);
            bar.set_prefix(format!(
                "{}/{} files, {} new, {} reused",
                p.files,
                p.files_total,
                HumanBytes(p.new_bytes),
                HumanBytes(p.reused_bytes)
            ));
        }
    }))
}

/// A byte counter on standard error for a copy of unknown length.
fn counter(label: &'static str) -> ProgressBar {
    if !bars_shown() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} {spinner} {bytes} {binary_bytes_per_sec}")
            .expect("the template is valid"),
    );
    bar.set_message(label);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// What a successful command prints: lines for people, one JSON object for scripts.
pub struct Report {
    pub lines: Vec<String>,
    pub json: Value,
}

/// Where a command's report goes (Unix conventions, issue 11).
#[derive(Clone, Copy, Debug, Default)]
pub struct Streams {
    /// The lines are the command's result (a key, a status, a header): standard output, shown
    /// even with --quiet. Otherwise they are status lines: standard error, hidden by --quiet.
    pub result: bool,
    /// Standard output carries data (`-o -`, completions, a man page): the JSON object goes to
    /// standard error.
    pub stdout_busy: bool,
    /// --quiet: no status lines.
    pub quiet: bool,
}

impl Report {
    pub fn print(&self, json: bool, streams: Streams) {
        if json {
            let mut value = self.json.clone();
            value["ok"] = Value::Bool(true);
            if streams.stdout_busy {
                eprintln!("{value}");
            } else {
                println!("{value}");
            }
        } else if streams.result && !streams.stdout_busy {
            for line in &self.lines {
                println!("{line}");
            }
        } else if !streams.quiet {
            for line in &self.lines {
                eprintln!("{line}");
            }
        }
    }
}

/// Whether `path` is `-`: standard input or output.
pub fn is_stdio(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// On SIGINT or SIGTERM: removes every partial output and staging object of this process
/// (which may hold plaintext, or part of a backup: `e2ee_backup_client::scratch`), says so on
/// standard error and exits with 128 + the signal (130, 143), as shells expect. Without this,
/// the default action of those signals would end the process before any destructor runs.
pub fn remove_partial_outputs_on_interrupt() {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
        return;
    };
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            scratch::remove_in_flight();
            eprintln!("e2ee-backup: interrupted; no partial output was left behind");
            std::process::exit(128 + signal);
        }
    });
}

/// A file written under a temporary name beside its target (`.e2ee-backup-*.partial`, see
/// [`scratch::TempFile`]) and renamed over it only by [`AtomicOutput::commit`]. Dropped without
/// a commit, or interrupted by SIGINT or SIGTERM (see [`remove_partial_outputs_on_interrupt`]),
/// the temporary file is removed, so a failed command leaves nothing behind; one a SIGKILL
/// left is removed by the next output into that directory.
///
/// The target `-` is standard output, written as the bytes come: what a failure cuts off
/// cannot be taken back there, so the caller's exit code is what tells.
pub struct AtomicOutput {
    sink: Sink,
    target: PathBuf,
    force: bool,
    written: u64,
}

enum Sink {
    Temp(TempFile),
    Stdout(io::BufWriter<io::Stdout>),
}

impl AtomicOutput {
    pub fn create(target: &Path, force: bool) -> Result<Self, Failure> {
        if is_stdio(target) {
            let stdout = io::BufWriter::with_capacity(1 << 20, io::stdout());
            return Ok(Self {
                sink: Sink::Stdout(stdout),
                target: target.into(),
                force,
                written: 0,
            });
        }
        if !force && target.exists() {
            return Err(Failure::usage(
                "output-exists",
                format!("{} exists; pass --force to replace it", target.display()),
            ));
        }
        let dir = match target.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let temp = TempFile::create_in(dir)
            .map_err(|e| Failure::io(&format!("cannot create a file in {}", dir.display()), e))?;
        Ok(Self { sink: Sink::Temp(temp), target: target.to_owned(), force, written: 0 })
    }

    /// The bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Makes the output durable and visible under its name.
    pub fn commit(self) -> Result<(), Failure> {
        match self.sink {
            Sink::Stdout(mut stdout) => {
                stdout.flush().map_err(|e| Failure::io("cannot write to standard output", e))
            }
            Sink::Temp(temp) => {
                temp.as_file().sync_all().map_err(|e| Failure::io("cannot flush the output", e))?;
                let target = self.target;
                temp.persist(&target, self.force)
                    .map_err(|e| Failure::io(&format!("cannot create {}", target.display()), e))
            }
        }
    }
}

impl Write for AtomicOutput {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match &mut self.sink {
            Sink::Temp(temp) => temp.as_file_mut().write(buf)?,
            Sink::Stdout(stdout) => stdout.write(buf)?,
        };
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.sink {
            Sink::Temp(temp) => temp.as_file_mut().flush(),
            Sink::Stdout(stdout) => stdout.flush(),
        }
    }
}

/// A byte-count progress bar on standard error, hidden unless that is a terminal.
pub fn progress(len: u64, label: &'static str) -> ProgressBar {
    if !bars_shown() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>10} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .expect("the template is valid")
        .progress_chars("=> "),
    );
    bar.set_message(label);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Copies `reader` into `writer`; returns the count.
///
/// Reading (which decrypts or encrypts) runs on its own thread while this one writes, with
/// 1 MiB buffers passed between them, so the two overlap; a failure on either side stops both.
/// Only bytes the reader has handed out are ever written: a decryptor hands out nothing
/// unverified.
pub fn copy<R: Read + Send>(reader: &mut R, writer: &mut impl Write) -> io::Result<u64> {
    const BUF: usize = 1 << 20;
    let (full_tx, full_rx) = mpsc::sync_channel::<(Vec<u8>, usize)>(2);
    let (empty_tx, empty_rx) = mpsc::channel::<Vec<u8>>();
    std::thread::scope(|scope| {
        let producer = scope.spawn(move || -> io::Result<()> {
            loop {
                let mut buf = empty_rx.try_recv().unwrap_or_else(|_| vec![0u8; BUF]);
                let n = loop {
                    match reader.read(&mut buf) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        other => break other?,
                    }
                };
                if n == 0 || full_tx.send((buf, n)).is_err() {
                    return Ok(());
                }
            }
        });
        let written = (|| {
            let mut total = 0u64;
            for (buf, n) in full_rx {
                writer.write_all(&buf[..n])?;
                total += n as u64;
                // The reader may have finished already; then the buffer is simply dropped.
                let _ = empty_tx.send(buf);
            }
            Ok(total)
        })();
        // `full_rx` is gone here, so a reader still running stops at its next send.
        let read = producer.join().expect("the reading thread does not panic");
        read.and(written)
    })
}

/// Bytes per second as a short human figure.
pub fn rate(bytes: u64, elapsed: Duration) -> String {
    let per_sec = bytes as f64 / elapsed.as_secs_f64().max(1e-9);
    format!("{:.1} MiB/s", per_sec / (1024.0 * 1024.0))
}
