//! Byte sources for the streaming decoder: a raw slice (zero copy) or a gzip stream (bounded).

use std::io::{BufRead, BufReader, Read};

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

/// A gzip-compressed profile, decompressed as it is read. Memory stays bounded by the largest
/// single field (itself bounded by the limit) plus the decompressor's window.
pub(crate) struct GzipSource<'a> {
    reader: BufReader<MultiGzDecoder<&'a [u8]>>,
    pos: u64,
    limit: u64,
    buf: Vec<u8>,
}

impl<'a> GzipSource<'a> {
    pub(crate) fn new(data: &'a [u8], limit: u64) -> Self {
        GzipSource {
            reader: BufReader::with_capacity(256 * 1024, MultiGzDecoder::new(data)),
            pos: 0,
            limit,
            buf: Vec::new(),
        }
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
        let mut value = 0u64;
        let mut n = 0;
        loop {
            let avail = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) => return Err(self.io_error(e, field)),
            };
            if avail.is_empty() {
                if n == 0 {
                    return Ok(None);
                }
                return Err(PprofError::Truncated {
                    field,
                    offset: self.pos,
                });
            }
            let b = avail[0];
            self.check_limit(1, field)?;
            self.reader.consume(1);
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

    fn bytes(&mut self, len: u64, field: &'static str) -> Result<&[u8], PprofError> {
        self.check_limit(len, field)?;
        self.buf.clear();
        // Grow with the data actually produced, not with the claimed length.
        let got = match (&mut self.reader).take(len).read_to_end(&mut self.buf) {
            Ok(n) => n as u64,
            Err(e) => return Err(self.io_error(e, field)),
        };
        if got < len {
            return Err(PprofError::Truncated {
                field,
                offset: self.pos,
            });
        }
        self.pos += len;
        Ok(&self.buf)
    }
}
