//! The part of [crc-fast](https://crates.io/crates/crc-fast)'s API that `object_store` uses: a
//! CRC-64/NVME [`Digest`], computed with the [`crc`] crate. See this crate's README for why it exists.

use crc::{CRC_64_NVME, Crc};

static CRC64_NVME: Crc<u64> = Crc::<u64>::new(&CRC_64_NVME);

/// The CRC algorithms this crate implements (crc-fast's enum has 60 more; `object_store` names only
/// this one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CrcAlgorithm {
    /// CRC-64/NVME (the checksum S3 calls `CRC64NVME`).
    Crc64Nvme,
}

/// A running checksum: feed it with [`Digest::update`], read it with [`Digest::finalize`].
#[derive(Clone)]
pub struct Digest {
    inner: crc::Digest<'static, u64>,
}

impl Digest {
    /// A digest of nothing yet, for `algorithm`.
    pub fn new(algorithm: CrcAlgorithm) -> Self {
        match algorithm {
            CrcAlgorithm::Crc64Nvme => Digest {
                inner: CRC64_NVME.digest(),
            },
        }
    }

    /// Adds `data` to the checksum.
    pub fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
    }

    /// The checksum of everything added so far (the digest can still be updated).
    pub fn finalize(&self) -> u64 {
        self.inner.clone().finalize()
    }
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Digest")
            .field("algorithm", &CrcAlgorithm::Crc64Nvme)
            .field("checksum", &self.finalize())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_check_value() {
        // CRC-64/NVME's check value (the CRC of "123456789") from the CRC catalogue, the same
        // constant crc-fast tests against.
        let mut digest = Digest::new(CrcAlgorithm::Crc64Nvme);
        digest.update(b"123456789");
        assert_eq!(digest.finalize(), 0xae8b_1486_0a79_9888);
    }

    /// Values crates.io's crc-fast 1.10.0 gives for the same inputs (a scratch program calling
    /// `crc_fast::Digest::new(CrcAlgorithm::Crc64Nvme)`, `update`, `finalize`; 2026-12-05).
    #[test]
    fn agrees_with_crc_fast() {
        let data = pseudo_random(10_000);
        for (input, crc_fast) in [
            (&b""[..], 0),
            (&data[..4097], 0xe3df_c027_b706_5523),
            (&data[..], 0xd319_18e3_baae_d6b1),
        ] {
            let mut digest = Digest::new(CrcAlgorithm::Crc64Nvme);
            digest.update(input);
            assert_eq!(digest.finalize(), crc_fast, "{} bytes", input.len());
        }
    }

    fn pseudo_random(len: u32) -> Vec<u8> {
        (0..len)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect()
    }

    #[test]
    fn split_updates_give_the_checksum_of_the_whole() {
        let data = pseudo_random(10_000);
        let mut whole = Digest::new(CrcAlgorithm::Crc64Nvme);
        whole.update(&data);
        for split in [0, 1, 7, 4096, 9_999, 10_000] {
            let mut parts = Digest::new(CrcAlgorithm::Crc64Nvme);
            parts.update(&data[..split]);
            let halfway = parts.finalize();
            parts.update(&data[split..]);
            assert_eq!(parts.finalize(), whole.finalize(), "split at {split}");
            if split > 0 && split < data.len() {
                assert_ne!(halfway, whole.finalize());
            }
        }
    }
}
