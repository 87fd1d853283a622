//! Streams a file into the native backup format and back (spec chapter 3): memory stays within
//! a few chunks whatever the file's size.
//!
//! ```text
//! cargo run -p e2ee-backup-format --example stream_file -- INPUT
//! ```
//!
//! Without an argument it streams 8 MiB of generated data. The key is drawn fresh and printed
//! as its key id only; a real program would keep it (see `e2ee-backup keygen`).

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Cursor, Read, Write};

use e2ee_backup_format::{Compression, Decryptor, EncryptOptions, Encryptor, Error, Metadata};
use e2ee_backup_kdf::BackupKey;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let input: Box<dyn Read> = match std::env::args_os().nth(1) {
        Some(path) => Box::new(BufReader::new(File::open(path)?)),
        None => Box::new(Cursor::new((0..8u32 << 20).map(|i| (i % 251) as u8).collect::<Vec<_>>())),
    };
    let key = BackupKey::generate();

    // Encrypt: the metadata block names the file; zstd compresses before sealing.
    let mut metadata = Metadata::default();
    metadata.fields.insert("name".into(), "example.db".into());
    let mut options = EncryptOptions::default();
    options.compression = Compression::Zstd;
    options.metadata = metadata;
    let mut sealed = Vec::new();
    let mut encryptor = Encryptor::new(BufWriter::new(&mut sealed), &key, options)?;
    let plain_len = io::copy(&mut { input }, &mut encryptor)?;
    encryptor.finish()?.flush()?;
    println!("sealed {plain_len} bytes into {} bytes", sealed.len());

    // Decrypt: the header and metadata are checked before the first byte comes out, and every
    // chunk is authenticated before it is released.
    let mut decryptor = Decryptor::new(&sealed[..], &key)?;
    println!("name in the metadata: {:?}", decryptor.metadata().fields.get("name"));
    let restored = io::copy(&mut decryptor, &mut io::sink())?;
    assert_eq!(restored, plain_len);

    // A flipped bit anywhere is refused with a typed error, never as wrong plaintext.
    let mut damaged = sealed.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    let mut reader = Decryptor::new(&damaged[..], &key)?;
    let err = io::copy(&mut reader, &mut io::sink()).expect_err("a damaged file must not decrypt");
    let typed = Error::from_io_error(err);
    println!("a damaged file: {} ({})", typed, typed.code());
    Ok(())
}
