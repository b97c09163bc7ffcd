//! Byte sources for the streaming decoder: a raw slice (zero copy) or a gzip stream (bounded).

use std::io::Read;
use std::sync::mpsc::{Receiver, SyncSender};

use flate2::bufread::MultiGzDecoder;

use crate::PprofError;

/// A forward-only reader of protobuf wire data that tracks its offset and enforces the
/// decompressed-size limit.
pub(crate) trait Source {
    /// Offset of the next byte, in decompressed bytes.
    fn offset(&self) -> u64;
    /// Reads a varint; `Ok(None)` only at a clean end of input.
    fn varint(&mut self, field: &'static str) -> Result<Option<u64>, PprofError>;
    /// Reads `len` bytes.
    fn bytes(&mut self, len: u64, field: &'static str) -> Result<&[u8], PprofError>;
    /// Skips `len` bytes.
    fn skip(&mut self, len: u64, field: &'static str) -> Result<(), PprofError> {
        self.bytes(len, field).map(|_| ())
    }
}

/// Decodes a varint from the front of `buf`: `(value, length)`, `None` if unterminated, and an
/// error message if longer than ten bytes.
pub(crate) fn varint_from(buf: &[u8]) -> Result<Option<(u64, usize)>, &'static str> {
    let mut value = 0u64;
    for (i, &b) in buf.iter().enumerate() {
        if i == 10 {
            return Err("varint longer than 10 bytes");
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Ok(Some((value, i + 1)));
        }
    }
    if buf.len() >= 10 {
        return Err("varint longer than 10 bytes");
    }
    Ok(None)
}

/// An uncompressed profile held in memory.
pub(crate) struct SliceSource<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> SliceSource<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        SliceSource { data, pos: 0 }
    }
}

impl Source for SliceSource<'_> {
    fn offset(&self) -> u64 {
        self.pos as u64
    }

    fn varint(&mut self, field: &'static str) -> Result<Option<u64>, PprofError> {
        let rest = &self.data[self.pos..];
        if rest.is_empty() {
            return Ok(None);
        }
        match varint_from(rest) {
            Ok(Some((v, n))) => {
                self.pos += n;
                Ok(Some(v))
            }
            Ok(None) => Err(PprofError::Truncated {
                field,
                offset: self.pos as u64,
            }),
            Err(reason) => Err(PprofError::Corrupt {
                field,
                offset: self.pos as u64,
                reason: reason.to_owned(),
            }),
        }
    }

    fn bytes(&mut self, len: u64, field: &'static str) -> Result<&[u8], PprofError> {
        let rest = self.data.len() - self.pos;
        if len > rest as u64 {
            return Err(PprofError::Truncated {
                field,
                offset: self.pos as u64,
            });
        }
        let start = self.pos;
        self.pos += len as usize;
        Ok(&self.data[start..self.pos])
    }
}

/// Decompressed bytes per chunk handed from the inflater to the parser.
const CHUNK: usize = 256 * 1024;
/// Compressed inputs at least this large are inflated on a second thread while the parser runs;
/// below it a thread costs more than it saves.
pub(crate) const THREAD_ABOVE: usize = 1 << 20;
/// Chunks the inflater may run ahead of the parser (bounds the memory in flight to 1 MiB).
const AHEAD: usize = 4;

/// Where decompressed chunks come from.
enum Feed<'a> {
    /// Inflated on demand, on the parser's thread.
    Inline(Box<MultiGzDecoder<&'a [u8]>>),
    /// Inflated on another thread ([`GzipSource::threaded`]); used buffers go back to it.
    Thread {
        chunks: Receiver<std::io::Result<Vec<u8>>>,
        spent: SyncSender<Vec<u8>>,
    },
}

/// A gzip-compressed profile, decompressed as it is read, in chunks. Memory stays bounded by the
/// chunks in flight plus the largest single field that spans chunks (itself bounded by the limit).
pub(crate) struct GzipSource<'a> {
    feed: Feed<'a>,
    chunk: Vec<u8>,
    /// Read position in `chunk`.
    at: usize,
    /// No more chunks.
    done: bool,
    pos: u64,
    limit: u64,
    /// A field that spans chunks, gathered.
    buf: Vec<u8>,
}

/// Inflates `data` into chunks of [`CHUNK`] bytes, at most `limit + 1` bytes in all (one past the
/// cap lets the parser see the cap exceeded), until the parser hangs up.
fn inflate_into(
    data: &[u8],
    limit: u64,
    chunks: &SyncSender<std::io::Result<Vec<u8>>>,
    spent: &Receiver<Vec<u8>>,
) {
    let mut decoder = MultiGzDecoder::new(data).take(limit.saturating_add(1));
    loop {
        let mut chunk = spent
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        chunk.clear();
        match (&mut decoder).take(CHUNK as u64).read_to_end(&mut chunk) {
            Ok(0) => return,
            Ok(_) => {
                if chunks.send(Ok(chunk)).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = chunks.send(Err(e));
                return;
            }
        }
    }
}

impl<'a> GzipSource<'a> {
    /// Inflates on the parser's thread.
    pub(crate) fn new(data: &'a [u8], limit: u64) -> Self {
        Self::with_feed(Feed::Inline(Box::new(MultiGzDecoder::new(data))), limit)
    }

    /// Inflates on a thread of `scope` while the parser reads: decompression and parsing take about
    /// as long as each other on a large profile, so a second core halves the wall time of both.
    /// The thread ends when the input does or when the source is dropped.
    pub(crate) fn threaded<'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        data: &'a [u8],
        limit: u64,
    ) -> Self
    where
        'a: 'scope,
    {
        let (chunk_tx, chunk_rx) = std::sync::mpsc::sync_channel(AHEAD);
        let (spent_tx, spent_rx) = std::sync::mpsc::sync_channel(AHEAD + 2);
        scope.spawn(move || inflate_into(data, limit, &chunk_tx, &spent_rx));
        Self::with_feed(
            Feed::Thread {
                chunks: chunk_rx,
                spent: spent_tx,
            },
            limit,
        )
    }

    fn with_feed(feed: Feed<'a>, limit: u64) -> Self {
        GzipSource {
            feed,
            chunk: Vec::new(),
            at: 0,
            done: false,
            pos: 0,
            limit,
            buf: Vec::new(),
        }
    }

    /// Replaces the consumed chunk with the next one; `Ok(false)` at the end of the input.
    fn refill(&mut self, field: &'static str) -> Result<bool, PprofError> {
        if self.done {
            return Ok(false);
        }
        let next = match &mut self.feed {
            Feed::Inline(decoder) => {
                self.chunk.clear();
                match decoder.take(CHUNK as u64).read_to_end(&mut self.chunk) {
                    Ok(_) => Ok(()),
                    Err(e) => Err(e),
                }
            }
            Feed::Thread { chunks, spent } => match chunks.recv() {
                Ok(Ok(chunk)) => {
                    let old = std::mem::replace(&mut self.chunk, chunk);
                    let _ = spent.try_send(old);
                    Ok(())
                }
                Ok(Err(e)) => Err(e),
                // The inflater ended: the input is complete.
                Err(_) => {
                    self.chunk.clear();
                    Ok(())
                }
            },
        };
        self.at = 0;
        if let Err(e) = next {
            self.done = true;
            return Err(self.io_error(e, field));
        }
        if self.chunk.is_empty() {
            self.done = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn io_error(&self, err: std::io::Error, field: &'static str) -> PprofError {
        if err.kind() == std::io::ErrorKind::UnexpectedEof {
            PprofError::Truncated {
                field,
                offset: self.pos,
            }
        } else {
            PprofError::Gzip {
                offset: self.pos,
                source: err,
            }
        }
    }

    fn check_limit(&self, extra: u64, field: &'static str) -> Result<(), PprofError> {
        if self.pos.saturating_add(extra) > self.limit {
            return Err(PprofError::DecompressedTooLarge {
                limit: self.limit,
                field,
            });
        }
        Ok(())
    }
}

impl Source for GzipSource<'_> {
    fn offset(&self) -> u64 {
        self.pos
    }

    fn varint(&mut self, field: &'static str) -> Result<Option<u64>, PprofError> {
        // Within the chunk (the common case), decode in place.
        if let Ok(Some((v, n))) = varint_from(&self.chunk[self.at..]) {
            self.check_limit(n as u64, field)?;
            self.at += n;
            self.pos += n as u64;
            return Ok(Some(v));
        }
        let mut value = 0u64;
        let mut n = 0;
        loop {
            if self.at == self.chunk.len() && !self.refill(field)? {
                if n == 0 {
                    return Ok(None);
                }
                return Err(PprofError::Truncated {
                    field,
                    offset: self.pos,
                });
            }
            let b = self.chunk[self.at];
            self.check_limit(1, field)?;
            self.at += 1;
            self.pos += 1;
            value |= u64::from(b & 0x7f) << (7 * n);
            n += 1;
            if b < 0x80 {
                return Ok(Some(value));
            }
            if n == 10 {
                return Err(PprofError::Corrupt {
                    field,
                    offset: self.pos - 10,
                    reason: "varint longer than 10 bytes".to_owned(),
                });
            }
        }
    }

    fn skip(&mut self, len: u64, field: &'static str) -> Result<(), PprofError> {
        self.check_limit(len, field)?;
        // Unknown fields are passed over without gathering them.
        let mut want = len;
        loop {
            let take = want.min((self.chunk.len() - self.at) as u64);
            self.at += take as usize;
            self.pos += take;
            want -= take;
            if want == 0 {
                return Ok(());
            }
            if !self.refill(field)? {
                return Err(PprofError::Truncated {
                    field,
                    offset: self.pos,
                });
            }
        }
    }

    fn bytes(&mut self, len: u64, field: &'static str) -> Result<&[u8], PprofError> {
        self.check_limit(len, field)?;
        let start = self.at;
        if len <= (self.chunk.len() - start) as u64 {
            // Within the chunk: no copy.
            self.at += len as usize;
            self.pos += len;
            return Ok(&self.chunk[start..self.at]);
        }
        // Spanning chunks: gather, growing with the data actually produced, not with the claim.
        self.buf.clear();
        let mut want = len as usize;
        loop {
            let take = want.min(self.chunk.len() - self.at);
            self.buf
                .extend_from_slice(&self.chunk[self.at..self.at + take]);
            self.at += take;
            self.pos += take as u64;
            want -= take;
            if want == 0 {
                return Ok(&self.buf);
            }
            if !self.refill(field)? {
                return Err(PprofError::Truncated {
                    field,
                    offset: self.pos,
                });
            }
        }
    }
}
