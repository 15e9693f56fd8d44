//! Offline object tools: encrypt, decrypt and inspect files in the object
//! format without a gateway or provider — the path for restoring a backup
//! that was copied byte for byte, even by a tool that dropped S3 metadata.

use super::{CliResult, KeysDir};
use crate::format::header::{HEADER_LEN, PartHeader, PartKind};
use crate::format::stream::{NameCheck, ObjectOpener, PartSealer};
use crate::format::{Algorithm, Envelope, ObjectName, OsRandom, size};
use crate::keys::KeyStore;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

const CHUNK: usize = 256 * 1024;

/// Arguments of `sealgate encrypt`.
#[derive(Debug, clap::Args)]
pub struct EncryptArgs {
    #[command(flatten)]
    dir: KeysDir,
    /// Bucket the object will be stored in (bound into the object).
    #[arg(long)]
    bucket: String,
    /// Object key it will be stored under (bound into the object).
    #[arg(long)]
    key: String,
    /// Content algorithm: AES-256-GCM or ChaCha20-Poly1305.
    #[arg(long, default_value = "AES-256-GCM")]
    algorithm: String,
    /// Plaintext file.
    input: PathBuf,
    /// Where to write the stored form.
    output: PathBuf,
}

/// Arguments of `sealgate decrypt`.
#[derive(Debug, clap::Args)]
pub struct DecryptArgs {
    #[command(flatten)]
    dir: KeysDir,
    /// Bucket the object was stored in.
    #[arg(long, required_unless_present = "no_name_check")]
    bucket: Option<String>,
    /// Object key it was stored under.
    #[arg(long, required_unless_present = "no_name_check")]
    key: Option<String>,
    /// Binding tag from the `x-amz-meta-sealgate-bind` metadata, for objects
    /// written by a server-side copy (their inline tag names the source).
    #[arg(long)]
    binding: Option<String>,
    /// Decrypt without checking which bucket/key the object belongs to
    /// (recovery when the original name is unknown).
    #[arg(long)]
    no_name_check: bool,
    /// Stored object file.
    input: PathBuf,
    /// Where to write the plaintext (written only if the whole object verifies).
    output: PathBuf,
}

/// Arguments of `sealgate inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Stored object file.
    input: PathBuf,
}

pub(super) fn encrypt(a: EncryptArgs) -> CliResult {
    let store = KeyStore::load(&a.dir.keys_dir)?;
    let alg = Algorithm::from_name(&a.algorithm)
        .ok_or_else(|| format!("unknown algorithm {:?}", a.algorithm))?;
    let mut input = File::open(&a.input).map_err(|e| format!("{}: {e}", a.input.display()))?;
    let len = input.metadata()?.len();
    let name = ObjectName {
        bucket: &a.bucket,
        key: &a.key,
    };
    let (env, dek) = Envelope::create(store.active(), alg, &mut OsRandom)?;
    let tag = env.binding_tag(&dek, name);
    let (mut sealer, header) =
        PartSealer::start(&env, &dek, tag, (1, PartKind::Last), len, &mut OsRandom)?;
    write_atomically(&a.output, |out| {
        out.write_all(&header)?;
        let mut buf = vec![0u8; CHUNK];
        let mut ct = Vec::with_capacity(CHUNK + CHUNK / 4);
        loop {
            let n = input.read(&mut buf)?;
            if n == 0 {
                break;
            }
            sealer.push(&buf[..n], &mut ct)?;
            out.write_all(&ct)?;
            ct.clear();
        }
        sealer.finish(&mut ct)?;
        out.write_all(&ct)?;
        Ok(())
    })
}

pub(super) fn decrypt(a: DecryptArgs) -> CliResult {
    let store = KeyStore::load(&a.dir.keys_dir)?;
    let (bucket, key) = (a.bucket.unwrap_or_default(), a.key.unwrap_or_default());
    let name = ObjectName {
        bucket: &bucket,
        key: &key,
    };
    let check = match (&a.binding, a.no_name_check) {
        (_, true) => NameCheck::Skip,
        (Some(hex_tag), false) => {
            let mut tag = [0u8; 32];
            hex::decode_to_slice(hex_tag, &mut tag)
                .map_err(|_| "--binding must be 64 hex digits")?;
            NameCheck::Tag(name, tag)
        }
        (None, false) => NameCheck::Inline(name),
    };
    let mut input = File::open(&a.input).map_err(|e| format!("{}: {e}", a.input.display()))?;
    let mut opener = ObjectOpener::new(&store, check);
    write_atomically(&a.output, |out| {
        let mut buf = vec![0u8; CHUNK];
        let mut pt = Vec::with_capacity(CHUNK);
        loop {
            let n = input.read(&mut buf)?;
            if n == 0 {
                break;
            }
            opener.push(&buf[..n], &mut pt)?;
            out.write_all(&pt)?;
            pt.clear();
        }
        let opened = opener.finish()?;
        tracing::debug!(
            parts = opened.parts,
            bytes = opened.plaintext_len,
            "decrypted"
        );
        Ok(())
    })?;
    if a.no_name_check {
        eprintln!("warning: the object's bucket/key binding was NOT checked (--no-name-check)");
    }
    Ok(())
}

/// Writes to a temporary file beside `path` and renames it into place only
/// when `f` succeeds, so a failed decryption leaves no partial plaintext.
fn write_atomically(path: &Path, f: impl FnOnce(&mut BufWriter<File>) -> CliResult) -> CliResult {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp =
        tempfile::NamedTempFile::new_in(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut out = BufWriter::new(tmp.reopen()?);
    f(&mut out)?;
    out.flush()?;
    out.get_ref().sync_all()?;
    tmp.persist(path)
        .map_err(|e| format!("{}: {}", path.display(), e.error))?;
    Ok(())
}

pub(super) fn inspect(a: InspectArgs) -> CliResult {
    let mut f = File::open(&a.input).map_err(|e| format!("{}: {e}", a.input.display()))?;
    let total = f.metadata()?.len();
    let mut head = vec![0u8; HEADER_LEN];
    let n = f.read(&mut head)?;
    let h = PartHeader::parse(&head[..n])?;
    println!("format version:   {}", h.envelope.version);
    println!("algorithm:        {}", h.envelope.algorithm);
    println!("key id (KEK):     {}", h.envelope.kek_id);
    println!("object id:        {}", hex::encode(h.envelope.object_id));
    println!(
        "first part:       number {}, {} plaintext bytes, kind {:?}",
        h.part_number, h.plaintext_len, h.kind
    );
    println!("binding tag:      {}", hex::encode(h.binding_tag));
    println!("stored size:      {total}");
    match size::part_plaintext_len(total) {
        Ok(p) if p == h.plaintext_len => println!("plaintext size:   {p} (single part)"),
        _ => println!("plaintext size:   multipart object; see `sealgate decrypt`"),
    }
    Ok(())
}
