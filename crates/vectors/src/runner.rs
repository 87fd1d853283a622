//! Runs the stateless vector families against another implementation (`e2ee-backup-vectors run`):
//! the vectors of spec sections 2.2, 2.3, 3.8, 4.14, 6.9 and 8.14.
//!
//! The other implementation is wrapped in an *adapter*: a program that reads one JSON request
//! per line on its standard input and writes one JSON answer per line on its standard output,
//! in order. The protocol is documented in `test-vectors/README.md`; in short, a request is
//! `{"op": NAME, "id": "FAMILY/TCID", ...inputs}` and an answer is `{"ok": {...outputs...}}` or
//! `{"error": CODE, ...details}`, where `CODE` is from the closed error vocabulary of the
//! vector files.
//!
//! Every case is judged on its own: an adapter that answers wrongly, prints something that is
//! not an answer, exits, or takes longer than the per-case timeout fails that case; the runner
//! then restarts it (when it is not answering in step any more) and goes on with the next case.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::Duration;

use serde_json::{Map, Value, json};

/// The families the runner drives, in the order it runs them.
pub const FAMILIES: &[&str] =
    &["key-encoding", "key-schedule", "fleet-bundle", "backup-format", "crypt15", "snapshot"];

/// The families the runner leaves out: their cases are sequences of calls over a state and
/// deterministic random draws, which the line protocol does not carry.
pub const STATEFUL_FAMILIES: &[&str] = &["vault", "replication"];

/// Default time an adapter has to answer one request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Default bound on the length of one answer line, in bytes (the newline not counted).
pub const DEFAULT_MAX_ANSWER: usize = 1 << 20;

/// How a run is made.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The adapter's command line, run by the shell (`sh -c`, or `cmd /C` on Windows).
    pub adapter: String,
    /// The families to run (a subset of [`FAMILIES`]), in the order of [`FAMILIES`].
    pub families: Vec<String>,
    /// Time the adapter has to answer one request.
    pub timeout: Duration,
    /// Longest answer line accepted, in bytes.
    pub max_answer: usize,
}

impl RunOptions {
    /// Every family, the default timeout and bound.
    pub fn new(adapter: impl Into<String>) -> Self {
        RunOptions {
            adapter: adapter.into(),
            families: FAMILIES.iter().map(|f| f.to_string()).collect(),
            timeout: DEFAULT_TIMEOUT,
            max_answer: DEFAULT_MAX_ANSWER,
        }
    }

    /// Keeps only the families of a comma-separated list; fails on a name the runner does not
    /// drive.
    pub fn only(&mut self, list: &str) -> Result<(), String> {
        let mut wanted = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if STATEFUL_FAMILIES.contains(&name) {
                return Err(format!(
                    "the {name} family is stateful and not driven by the runner (see test-vectors/README.md)"
                ));
            }
            if !FAMILIES.contains(&name) {
                return Err(format!("unknown family {name:?}; the runner drives {FAMILIES:?}"));
            }
            wanted.push(name);
        }
        if wanted.is_empty() {
            return Err("--only names no family".into());
        }
        self.families =
            FAMILIES.iter().filter(|f| wanted.contains(f)).map(|f| f.to_string()).collect();
        Ok(())
    }
}

/// What one case expects.
#[derive(Debug, Clone, PartialEq)]
pub enum Expected {
    /// An `ok` answer whose object holds (at least) these fields with these values.
    Ok(Map<String, Value>),
    /// An `error` answer with this code and these detail fields beside it.
    Error {
        /// The code from the closed vocabulary.
        code: String,
        /// Fields the answer must carry next to `error` (a position, a length, an offset).
        details: Map<String, Value>,
    },
}

/// One case turned into a request.
#[derive(Debug, Clone)]
pub struct Case {
    /// `FAMILY/TCID`, e.g. `crypt15/53`; also the request's `id`.
    pub id: String,
    /// The case's comment in the vector file.
    pub comment: String,
    /// The request line's JSON.
    pub request: Value,
    /// What the answer must be.
    pub expected: Expected,
}

/// The outcome of a run.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// How many cases passed.
    pub passed: usize,
    /// The ids of the cases that failed, with why.
    pub failed: Vec<(String, String)>,
}

/// The cases of one vector file (parsed), as requests and expected answers.
pub fn cases(family: &str, json: &Value) -> Result<Vec<Case>, String> {
    let mut out = Vec::new();
    for group in json["testGroups"].as_array().ok_or("no testGroups")? {
        for case in group["tests"].as_array().ok_or("a group without tests")? {
            let tc_id = case["tcId"].as_u64().ok_or("a case without tcId")?;
            let id = format!("{family}/{tc_id}");
            let (op, inputs, expected) =
                request_of(family, case).map_err(|e| format!("{id}: {e}"))?;
            let mut request = Map::new();
            request.insert("op".into(), json!(op));
            request.insert("id".into(), json!(id));
            for field in inputs {
                request.insert(field.to_string(), field_of(case, field)?);
            }
            out.push(Case {
                id,
                comment: case["comment"].as_str().unwrap_or_default().to_owned(),
                request: Value::Object(request),
                expected,
            });
        }
    }
    Ok(out)
}

fn field_of(case: &Value, field: &str) -> Result<Value, String> {
    case.get(field).cloned().ok_or_else(|| format!("tcId {}: no field {field}", case["tcId"]))
}

fn pick(case: &Value, fields: &[&str]) -> Result<Map<String, Value>, String> {
    fields.iter().map(|f| Ok((f.to_string(), field_of(case, f)?))).collect()
}

/// The op, the input fields copied from the case, and the expected answer.
fn request_of(
    family: &str,
    case: &Value,
) -> Result<(&'static str, &'static [&'static str], Expected), String> {
    let valid = match case["result"].as_str() {
        Some("valid") => true,
        Some("invalid") => false,
        other => return Err(format!("unknown result {other:?}")),
    };
    let error = |code: &Value, details: &[&str]| -> Result<Expected, String> {
        let code = code.as_str().ok_or("the error is not a code")?.to_owned();
        let details = details
            .iter()
            .filter_map(|d| {
                case.get(*d).filter(|v| !v.is_null()).map(|v| (d.to_string(), v.clone()))
            })
            .collect();
        Ok(Expected::Error { code, details })
    };
    Ok(match family {
        "key-encoding" => {
            let expected = if valid {
                Expected::Ok(pick(case, &["key", "display"])?)
            } else {
                // The error object holds the code and its details (position or found).
                let err = &case["error"];
                let details = ["position", "found"]
                    .iter()
                    .filter_map(|d| err.get(*d).map(|v| (d.to_string(), v.clone())))
                    .collect();
                let code = err["code"].as_str().ok_or("the error has no code")?.to_owned();
                Expected::Error { code, details }
            };
            ("key-parse", &["input"], expected)
        }
        "key-schedule" if case.get("exportKey").is_some() => {
            ("vault-wrapping-key", &["exportKey"], Expected::Ok(pick(case, &["wrappingKey"])?))
        }
        "key-schedule" => (
            "file-keys",
            &["key", "salt"],
            Expected::Ok(pick(
                case,
                &[
                    "keyId",
                    "headerMacKey",
                    "metadataKey",
                    "payloadKey",
                    "nonceBase",
                    "crypt15BackupEncryption",
                    "crypt15MetadataEncryption",
                    "crypt15MetadataAuthentication",
                ],
            )?),
        ),
        "fleet-bundle" => {
            let expected = if valid {
                Expected::Ok(pick(&case["bundle"], &["epoch", "notAfter", "keys"])?)
            } else {
                error(&case["error"], &[])?
            };
            ("fleet-bundle-verify", &["signed", "pin", "now", "lastSeenEpoch"], expected)
        }
        "backup-format" => {
            let expected = if valid {
                Expected::Ok(pick(case, &["plaintext", "createdAt", "plaintextLen", "fields"])?)
            } else {
                error(&case["error"], &[])?
            };
            ("backup-decrypt", &["key", "file"], expected)
        }
        "crypt15" if case.get("keyFile").is_some() => {
            let expected = if valid {
                Expected::Ok(pick(case, &["key"])?)
            } else {
                error(&case["error"], &["found", "offset"])?
            };
            ("crypt15-key-file", &["keyFile"], expected)
        }
        "crypt15" => {
            let expected = if valid {
                Expected::Ok(pick(
                    case,
                    &["plaintext", "variant", "prefix", "iv", "appVersion", "jidSuffix"],
                )?)
            } else {
                error(&case["error"], &[])?
            };
            ("crypt15-decrypt", &["key", "file"], expected)
        }
        "snapshot" if case.get("manifestKey").is_some() => (
            "snapshot-keys",
            &["key", "mediaRootKey"],
            Expected::Ok(pick(
                case,
                &["mediaRootWrapKey", "manifestKey", "blobNameKey", "blobKey", "chunkingSeed"],
            )?),
        ),
        "snapshot" if case.get("file").is_some() && case.get("mediaRootKey").is_some() => {
            let expected = if valid {
                Expected::Ok(pick(case, &["content"])?)
            } else {
                error(&case["error"], &["cause"])?
            };
            ("blob-open", &["mediaRootKey", "name", "file"], expected)
        }
        "snapshot" if case.get("file").is_some() => {
            let expected = if valid {
                Expected::Ok(pick(case, &["manifest"])?)
            } else {
                error(&case["error"], &["cause"])?
            };
            ("manifest-open", &["key", "id", "file"], expected)
        }
        "snapshot" if case.get("name").is_some() => (
            "blob-name",
            &["mediaRootKey", "content"],
            Expected::Ok(pick(case, &["name", "object"])?),
        ),
        "snapshot" => {
            let expected = if valid {
                Expected::Ok(pick(case, &["manifest", "encoding"])?)
            } else {
                error(&case["error"], &[])?
            };
            ("manifest-decode", &["encoding"], expected)
        }
        other => return Err(format!("the runner does not drive the {other} family")),
    })
}

/// Judges one answer against what the case expects.
pub fn judge(answer: &Value, expected: &Expected) -> Result<(), String> {
    let object =
        answer.as_object().ok_or_else(|| format!("not a JSON object: {}", short(answer)))?;
    let (ok, error) = (object.get("ok"), object.get("error"));
    match (expected, ok, error) {
        (_, Some(_), Some(_)) => Err("the answer holds both ok and error".into()),
        (_, None, None) => Err(format!("the answer holds neither ok nor error: {}", short(answer))),
        (Expected::Ok(_), None, Some(code)) => {
            Err(format!("expected ok, got error {}", short(code)))
        }
        (Expected::Error { code, .. }, Some(_), None) => {
            Err(format!("expected error {code:?}, got ok"))
        }
        (Expected::Ok(fields), Some(found), None) => {
            let found = found
                .as_object()
                .ok_or_else(|| format!("ok is not an object: {}", short(found)))?;
            for (name, value) in fields {
                match found.get(name) {
                    Some(v) if v == value => {}
                    Some(v) => {
                        return Err(format!(
                            "ok.{name}: expected {}, got {}",
                            short(value),
                            short(v)
                        ));
                    }
                    None => {
                        return Err(format!("ok.{name} is missing (expected {})", short(value)));
                    }
                }
            }
            Ok(())
        }
        (Expected::Error { code, details }, None, Some(found)) => {
            if found.as_str() != Some(code.as_str()) {
                return Err(format!("expected error {code:?}, got error {}", short(found)));
            }
            for (name, value) in details {
                match object.get(name) {
                    Some(v) if v == value => {}
                    other => {
                        return Err(format!(
                            "error {code:?}: {name} expected {}, got {}",
                            short(value),
                            other.map_or("nothing".into(), short)
                        ));
                    }
                }
            }
            Ok(())
        }
    }
}

/// A value for a message, cut to a readable length.
fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 120 {
        format!("{}... ({} characters)", text.chars().take(120).collect::<String>(), text.len())
    } else {
        text
    }
}

/// Runs the selected families of `dir` against the adapter, writing one line per case and a
/// summary to `out`. An `Err` is a run that could not be made at all (a vector file that does
/// not read, an adapter that cannot be started); failed cases are in the [`Summary`].
pub fn run(dir: &Path, options: &RunOptions, out: &mut dyn Write) -> Result<Summary, String> {
    let mut all = Vec::new();
    for family in &options.families {
        let path = dir.join(format!("{family}.json"));
        let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let json: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        all.push((family.clone(), cases(family, &json).map_err(|e| format!("{family}: {e}"))?));
    }
    let io = |e: std::io::Error| e.to_string();
    let mut summary = Summary::default();
    let mut adapter: Option<Adapter> = None;
    let mut per_family = Vec::new();
    for (family, cases) in &all {
        let (mut passed, mut failed) = (0, 0);
        for case in cases {
            let running = match adapter.take() {
                Some(running) => running,
                None => Adapter::start(&options.adapter, options.max_answer)?,
            };
            let (verdict, keep) = ask(running, case, options.timeout);
            adapter = keep;
            match verdict {
                Ok(()) => {
                    passed += 1;
                    summary.passed += 1;
                    writeln!(out, "PASS {} {}", case.id, case.comment).map_err(io)?;
                }
                Err(why) => {
                    failed += 1;
                    writeln!(out, "FAIL {} {}: {why}", case.id, case.comment).map_err(io)?;
                    summary.failed.push((case.id.clone(), why));
                }
            }
        }
        per_family.push((family, passed, failed));
    }
    if let Some(running) = adapter {
        running.stop();
    }
    writeln!(out).map_err(io)?;
    for (family, passed, failed) in per_family {
        writeln!(out, "{family}: {passed} passed, {failed} failed").map_err(io)?;
    }
    writeln!(out, "total: {} passed, {} failed", summary.passed, summary.failed.len())
        .map_err(io)?;
    if !summary.failed.is_empty() {
        let ids: Vec<&str> = summary.failed.iter().map(|(id, _)| id.as_str()).collect();
        writeln!(out, "failed: {}", ids.join(" ")).map_err(io)?;
    }
    Ok(summary)
}

/// Sends one case; returns the verdict and the adapter if it is still answering in step.
fn ask(
    mut adapter: Adapter,
    case: &Case,
    timeout: Duration,
) -> (Result<(), String>, Option<Adapter>) {
    let mut line = case.request.to_string();
    line.push('\n');
    let sent = match adapter.stdin.as_mut() {
        Some(stdin) => stdin.write_all(line.as_bytes()).and_then(|()| stdin.flush()),
        None => Err(std::io::ErrorKind::BrokenPipe.into()),
    };
    if let Err(e) = sent {
        let status = adapter.kill();
        return (Err(format!("the adapter did not take the request ({e}){status}")), None);
    }
    match adapter.lines.recv_timeout(timeout) {
        Ok(Ok(answer)) => match serde_json::from_str::<Value>(&answer) {
            Ok(value) => (judge(&value, &case.expected), Some(adapter)),
            Err(e) => {
                adapter.kill();
                let shown: String = answer.chars().take(80).collect();
                (Err(format!("the answer is not JSON ({e}): {shown:?}")), None)
            }
        },
        Ok(Err(why)) => {
            adapter.kill();
            (Err(why), None)
        }
        Err(RecvTimeoutError::Timeout) => {
            adapter.kill();
            (Err(format!("no answer within {} ms", timeout.as_millis())), None)
        }
        Err(RecvTimeoutError::Disconnected) => {
            let status = adapter.kill();
            (Err(format!("the adapter closed its output without answering{status}")), None)
        }
    }
}

/// A running adapter.
struct Adapter {
    child: Child,
    /// `None` once closed.
    stdin: Option<ChildStdin>,
    lines: Receiver<Result<String, String>>,
}

impl Adapter {
    fn start(command: &str, max_answer: usize) -> Result<Self, String> {
        let mut shell = shell(command);
        shell.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        #[cfg(unix)]
        {
            // Its own process group, so that a timeout ends the adapter and not only the shell.
            use std::os::unix::process::CommandExt;
            shell.process_group(0);
        }
        let mut child =
            shell.spawn().map_err(|e| format!("cannot start the adapter {command:?}: {e}"))?;
        let stdin = child.stdin.take().ok_or("no stdin pipe")?;
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || read_lines(stdout, max_answer, tx));
        Ok(Adapter { child, stdin: Some(stdin), lines })
    }

    /// Ends the adapter at once; returns its exit status for a message (`""` if none).
    fn kill(mut self) -> String {
        if let Ok(Some(status)) = self.child.try_wait() {
            return format!(" ({status})");
        }
        // A crashed adapter may need a moment to be reaped.
        thread::sleep(Duration::from_millis(20));
        if let Ok(Some(status)) = self.child.try_wait() {
            return format!(" ({status})");
        }
        #[cfg(unix)]
        {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.child.id())])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        String::new()
    }

    /// Closes the adapter's input, gives it a second to exit, then ends it.
    fn stop(mut self) {
        self.stdin = None;
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }
}

fn shell(command: &str) -> Command {
    if cfg!(windows) {
        let mut cmd = Command::new("cmd");
        cmd.args(["/C", command]);
        cmd
    } else {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", command]);
        cmd
    }
}

/// Reads answer lines until end of file, a read error or a line over the bound.
fn read_lines(stdout: ChildStdout, max: usize, tx: Sender<Result<String, String>>) {
    let mut reader = BufReader::new(stdout);
    loop {
        let mut line = Vec::new();
        match reader.by_ref().take(max as u64 + 1).read_until(b'\n', &mut line) {
            Ok(0) => return,
            Ok(_) if line.last() == Some(&b'\n') => {
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                let text = String::from_utf8(line).map_err(|_| "the answer is not UTF-8".into());
                if tx.send(text).is_err() {
                    return;
                }
            }
            Ok(_) if line.len() > max => {
                let _ = tx.send(Err(format!("the answer line is longer than {max} bytes")));
                return;
            }
            Ok(_) => {
                let _ = tx.send(Err("the adapter ended its output inside an answer line".into()));
                return;
            }
            Err(e) => {
                let _ = tx.send(Err(format!("reading the answer: {e}")));
                return;
            }
        }
    }
}
