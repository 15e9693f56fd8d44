//! Segmented streaming AEAD (FORMAT.md §Segments), sans I/O.
//!
//! Callers push bytes and receive bytes; memory is one segment per stream
//! whatever the object size. Openers release a segment's plaintext only after
//! its tag verified, and report truncation or trailing data at `finish`, so a
//! caller that streams to a client must abort the response on any error.

use super::aead::{NONCE_LEN, SegmentCipher, TAG_LEN};
use super::envelope::{Dek, Envelope, KekLookup};
use super::header::{HEADER_LEN, PartHeader, PartKind};
use super::size::{SegmentSpan, segment_count, segment_plaintext_len};
use super::{FORMAT_V1, FormatError, ObjectName, RandomSource, SEGMENT_LEN};

/// Nonce of segment `index`: the index as u64 BE, three zero bytes, then the
/// final-segment flag (0x01 on the last segment of a part, else 0x00).
pub fn segment_nonce(index: u64, last: bool) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    n[..8].copy_from_slice(&index.to_be_bytes());
    n[11] = u8::from(last);
    n
}

/// Encrypts one part stream: header, then segments.
pub struct PartSealer {
    cipher: SegmentCipher,
    declared: u64,
    consumed: u64,
    next_segment: u64,
    segments: u64,
    pending: Vec<u8>,
}

impl PartSealer {
    /// Starts a part stream of exactly `plaintext_len` bytes and returns the
    /// sealer and the 212 header bytes to emit first. `binding_tag` comes from
    /// [`Envelope::binding_tag`] for the object's bucket and key; `kind` says
    /// whether this part ends the object ([`PartKind::Last`]: a single PUT,
    /// or a part known to be an upload's last) or not.
    pub fn start(
        envelope: &Envelope,
        dek: &Dek,
        binding_tag: [u8; 32],
        (part_number, kind): (u32, PartKind),
        plaintext_len: u64,
        rng: &mut dyn RandomSource,
    ) -> Result<(PartSealer, [u8; HEADER_LEN]), FormatError> {
        let mut salt = [0u8; 32];
        rng.fill(&mut salt)?;
        let (header, cipher) = PartHeader::new(
            envelope.clone(),
            dek,
            binding_tag,
            (part_number, kind),
            plaintext_len,
            salt,
        )?;
        let sealer = PartSealer {
            cipher,
            declared: plaintext_len,
            consumed: 0,
            next_segment: 0,
            segments: segment_count(plaintext_len),
            pending: Vec::new(),
        };
        Ok((sealer, header.to_bytes()))
    }

    /// Encrypts `input`, appending every completed segment to `out`.
    pub fn push(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), FormatError> {
        let total = self.consumed + input.len() as u64;
        if total > self.declared {
            return Err(FormatError::LengthMismatch {
                declared: self.declared,
                got: total,
            });
        }
        while !input.is_empty() {
            let want = segment_plaintext_len(self.declared, self.next_segment) as usize;
            if self.pending.is_empty() && input.len() >= want {
                // Fast path: seal straight from the input into `out`.
                self.emit(&input[..want], out);
                input = &input[want..];
            } else {
                let take = (want - self.pending.len()).min(input.len());
                self.pending.extend_from_slice(&input[..take]);
                input = &input[take..];
                if self.pending.len() == want {
                    let seg = std::mem::take(&mut self.pending);
                    self.emit(&seg, out);
                    self.pending = seg;
                    self.pending.clear();
                }
            }
        }
        self.consumed = total;
        Ok(())
    }

    fn emit(&mut self, plaintext: &[u8], out: &mut Vec<u8>) {
        let last = self.next_segment + 1 == self.segments;
        let start = out.len();
        out.extend_from_slice(plaintext);
        let tag = self.cipher.seal(
            segment_nonce(self.next_segment, last),
            &[],
            &mut out[start..],
        );
        out.extend_from_slice(&tag);
        self.next_segment += 1;
    }

    /// Ends the stream; fails if fewer bytes arrived than declared.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), FormatError> {
        if self.consumed != self.declared {
            return Err(FormatError::LengthMismatch {
                declared: self.declared,
                got: self.consumed,
            });
        }
        if self.declared == 0 {
            // The lone empty final segment.
            self.emit(&[], out);
        }
        debug_assert_eq!(self.next_segment, self.segments);
        Ok(())
    }
}

/// Decrypts the segments of one part whose header was verified.
pub struct PartOpener {
    cipher: SegmentCipher,
    part: u32,
    plaintext_len: u64,
    next_segment: u64,
    end_segment: u64,
    buf: Vec<u8>,
    skip: u64,
    remaining: u64,
}

impl PartOpener {
    /// Opens a whole part. Input starts right after the header.
    pub fn new(header: &PartHeader, cipher: SegmentCipher) -> PartOpener {
        let p = header.plaintext_len;
        PartOpener {
            cipher,
            part: header.part_number,
            plaintext_len: p,
            next_segment: 0,
            end_segment: segment_count(p),
            buf: Vec::new(),
            skip: 0,
            remaining: p,
        }
    }

    /// Opens only the segments of `span` (from [`super::size::part_span`]).
    /// Input starts at `span.ciphertext_start`; output is exactly the range.
    pub fn for_span(header: &PartHeader, cipher: SegmentCipher, span: &SegmentSpan) -> PartOpener {
        PartOpener {
            cipher,
            part: header.part_number,
            plaintext_len: header.plaintext_len,
            next_segment: span.first_segment,
            end_segment: span.last_segment + 1,
            buf: Vec::new(),
            skip: span.skip,
            remaining: span.len,
        }
    }

    /// True once every expected segment has verified.
    pub fn is_done(&self) -> bool {
        self.next_segment == self.end_segment
    }

    /// Consumes ciphertext up to the end of this part's expected segments and
    /// appends verified plaintext to `out`. Returns how many input bytes were
    /// consumed; bytes beyond the part are left for the caller.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, FormatError> {
        let mut used = 0;
        while used < input.len() && !self.is_done() {
            let pt_len = segment_plaintext_len(self.plaintext_len, self.next_segment) as usize;
            let ct_len = pt_len + TAG_LEN;
            let rest = &input[used..];
            if self.buf.is_empty() && rest.len() >= ct_len {
                self.open_segment(&rest[..ct_len], out)?;
                used += ct_len;
            } else {
                let take = (ct_len - self.buf.len()).min(rest.len());
                self.buf.extend_from_slice(&rest[..take]);
                used += take;
                if self.buf.len() == ct_len {
                    let seg = std::mem::take(&mut self.buf);
                    let r = self.open_segment(&seg, out);
                    self.buf = seg;
                    self.buf.clear();
                    r?;
                }
            }
        }
        Ok(used)
    }

    fn open_segment(&mut self, ct: &[u8], out: &mut Vec<u8>) -> Result<(), FormatError> {
        let index = self.next_segment;
        let last = index + 1 == segment_count(self.plaintext_len);
        let (body, tag) = ct.split_at(ct.len() - TAG_LEN);
        let tag: &[u8; TAG_LEN] = tag.try_into().expect("tag length");
        let start = out.len();
        out.extend_from_slice(body);
        if self
            .cipher
            .open(segment_nonce(index, last), &[], &mut out[start..], tag)
            .is_err()
        {
            // Unverified bytes must never be released.
            out[start..].fill(0);
            out.truncate(start);
            return Err(FormatError::SegmentAuth {
                part: self.part,
                segment: index,
            });
        }
        // Trim to the requested range.
        let skip = (self.skip as usize).min(out.len() - start);
        out.drain(start..start + skip);
        self.skip -= skip as u64;
        let keep = ((out.len() - start) as u64).min(self.remaining);
        out.truncate(start + keep as usize);
        self.remaining -= keep;
        self.next_segment += 1;
        Ok(())
    }

    /// Fails unless every expected segment arrived and verified.
    pub fn finish(&self) -> Result<(), FormatError> {
        if self.is_done() {
            Ok(())
        } else {
            Err(FormatError::Truncated { part: self.part })
        }
    }
}

/// How an opener checks that an object sits under the name it was read from.
#[derive(Debug, Clone, Copy)]
pub enum NameCheck<'a> {
    /// Check the tag in the first part header (objects never copied).
    Inline(ObjectName<'a>),
    /// Check a tag carried in S3 metadata (objects written by a server-side
    /// copy, whose inline tag names the source).
    Tag(ObjectName<'a>, [u8; 32]),
    /// Skip the check: only for offline recovery when the original name is
    /// unknown; the caller must say so to the user.
    Skip,
}

enum State {
    Header(Vec<u8>),
    Body(Box<PartOpener>),
}

/// Decrypts a whole object: one or more parts back to back, as stored.
pub struct ObjectOpener<'k, K: KekLookup + ?Sized> {
    keys: &'k K,
    check: NameCheck<'k>,
    state: State,
    first: Option<(Envelope, [u8; 32], Dek)>,
    last_part: u32,
    parts: u32,
    plaintext: u64,
    /// A part that ends the object was seen (version 3): nothing may follow.
    ended: bool,
}

/// What an opened object turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// Number of part streams.
    pub parts: u32,
    /// Total plaintext bytes released.
    pub plaintext_len: u64,
}

impl<'k, K: KekLookup + ?Sized> ObjectOpener<'k, K> {
    /// An opener that will unwrap the data key with `keys` and check the
    /// object's name binding as `check` says.
    pub fn new(keys: &'k K, check: NameCheck<'k>) -> Self {
        ObjectOpener {
            keys,
            check,
            state: State::Header(Vec::with_capacity(HEADER_LEN)),
            first: None,
            last_part: 0,
            parts: 0,
            plaintext: 0,
            ended: false,
        }
    }

    /// Consumes stored bytes and appends verified plaintext to `out`.
    pub fn push(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), FormatError> {
        while !input.is_empty() {
            match &mut self.state {
                State::Header(buf) => {
                    let take = (HEADER_LEN - buf.len()).min(input.len());
                    buf.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    if self.ended || (self.parts > 0 && PartHeaderPrefix::check(buf).is_err()) {
                        // Not the start of another part, or after the part
                        // that ended the object: bytes after the end.
                        return Err(FormatError::TrailingData {
                            part: self.last_part,
                        });
                    }
                    if buf.len() == HEADER_LEN {
                        let header = PartHeader::parse(buf)?;
                        let cipher = self.accept_header(&header)?;
                        if header.kind == PartKind::Completion {
                            // A bare header: the object ends here.
                            self.state = State::Header(Vec::new());
                        } else {
                            self.state = State::Body(Box::new(PartOpener::new(&header, cipher)));
                        }
                    } else if self.parts == 0 {
                        // Fail early on data that is plainly not ours.
                        PartHeaderPrefix::check(buf)?;
                    }
                }
                State::Body(part) => {
                    let before = out.len();
                    let used = part.push(input, out)?;
                    self.plaintext += (out.len() - before) as u64;
                    input = &input[used..];
                    if part.is_done() {
                        self.state = State::Header(Vec::with_capacity(HEADER_LEN));
                    }
                }
            }
        }
        Ok(())
    }

    fn accept_header(&mut self, h: &PartHeader) -> Result<SegmentCipher, FormatError> {
        if self.first.is_none() {
            // Objects are numbered contiguously from 1 (FORMAT.md §Multipart).
            if h.part_number != 1 {
                return Err(FormatError::PartMismatch {
                    part: h.part_number,
                });
            }
            let dek = h.envelope.open(self.keys)?;
            let cipher = h.verify(&dek)?;
            match self.check {
                NameCheck::Inline(name) => h.envelope.check_binding(&dek, name, &h.binding_tag)?,
                NameCheck::Tag(name, tag) => h.envelope.check_binding(&dek, name, &tag)?,
                NameCheck::Skip => {}
            }
            if h.kind == PartKind::Completion {
                // A record follows at least one data part.
                return Err(FormatError::PartMismatch { part: 1 });
            }
            self.first = Some((h.envelope.clone(), h.binding_tag, dek));
            self.last_part = h.part_number;
            self.parts = 1;
            self.ended = h.kind.ends_object();
            return Ok(cipher);
        }
        let (env, tag, dek) = self.first.as_ref().expect("checked above");
        // Every part repeats the object's envelope and binding, and part
        // numbers go 1, 2, 3, ...: no splicing, reordering, duplicates or
        // gaps. Version 3 also marks the part that ends the object, so
        // removing whole trailing parts is seen at `finish` (version 1
        // cannot see it; FORMAT.md §Limits).
        if h.envelope != *env || h.binding_tag != *tag || h.part_number != self.last_part + 1 {
            return Err(FormatError::PartMismatch {
                part: h.part_number,
            });
        }
        let cipher = h.verify(dek)?;
        if h.kind == PartKind::Completion && h.plaintext_len != self.plaintext {
            return Err(FormatError::CompletionMismatch(
                "total length differs from the parts' lengths",
            ));
        }
        self.last_part = h.part_number;
        self.parts += 1;
        self.ended = h.kind.ends_object();
        Ok(cipher)
    }

    /// Ends the object: fails if it stopped inside a header or a part.
    pub fn finish(self) -> Result<Opened, FormatError> {
        match self.state {
            // A finished part always returns to the Header state, so a Body
            // here is a part cut short.
            State::Body(p) => Err(FormatError::Truncated { part: p.part }),
            State::Header(buf) if buf.is_empty() && self.parts > 0 => {
                let version = self.first.as_ref().map_or(FORMAT_V1, |f| f.0.version);
                if version != FORMAT_V1 && !self.ended {
                    return Err(FormatError::CompletionMissing {
                        part: self.last_part,
                    });
                }
                Ok(Opened {
                    parts: self.parts,
                    plaintext_len: self.plaintext,
                })
            }
            State::Header(buf) if self.parts == 0 => {
                PartHeaderPrefix::check(&buf)?;
                Err(FormatError::TruncatedHeader {
                    got: buf.len(),
                    need: HEADER_LEN,
                })
            }
            State::Header(_) => Err(FormatError::TrailingData {
                part: self.last_part,
            }),
        }
    }
}

/// Early checks on an incomplete first header.
struct PartHeaderPrefix;

impl PartHeaderPrefix {
    fn check(buf: &[u8]) -> Result<(), FormatError> {
        let n = buf.len().min(super::header::MAGIC.len());
        if buf[..n] != super::header::MAGIC[..n] {
            return Err(FormatError::NotSealed);
        }
        Ok(())
    }
}

/// Convenience for whole in-memory objects: seals `plaintext` as a single
/// part stream bound to `name`. Used by tools and tests; the gateway streams.
pub fn seal_single(
    envelope: &Envelope,
    dek: &Dek,
    name: ObjectName<'_>,
    plaintext: &[u8],
    rng: &mut dyn RandomSource,
) -> Result<Vec<u8>, FormatError> {
    let tag = envelope.binding_tag(dek, name);
    let kind = if envelope.version == FORMAT_V1 {
        PartKind::Data
    } else {
        PartKind::Last
    };
    let (mut sealer, header) =
        PartSealer::start(envelope, dek, tag, (1, kind), plaintext.len() as u64, rng)?;
    let mut out =
        Vec::with_capacity(super::size::part_ciphertext_len(plaintext.len() as u64) as usize);
    out.extend_from_slice(&header);
    sealer.push(plaintext, &mut out)?;
    sealer.finish(&mut out)?;
    Ok(out)
}

/// Convenience for whole in-memory objects: opens everything in `stored`.
pub fn open_all<K: KekLookup + ?Sized>(
    keys: &K,
    check: NameCheck<'_>,
    stored: &[u8],
) -> Result<Vec<u8>, FormatError> {
    let mut out = Vec::with_capacity(stored.len());
    let mut opener = ObjectOpener::new(keys, check);
    opener.push(stored, &mut out)?;
    opener.finish()?;
    Ok(out)
}

const _: () = assert!(SEGMENT_LEN == 65536);
