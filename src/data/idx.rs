//! The IDX file format of MNIST, raw or gzip-compressed.
//!
//! An IDX file is a 4-byte magic number — two zero bytes, a type code (0x08 for unsigned
//! bytes) and the number of dimensions — then each dimension as a big-endian u32, then the
//! values in row-major order. MNIST uses 0x00000803 for images `[count, 28, 28]` and
//! 0x00000801 for labels `[count]`.
//!
//! reference: <http://yann.lecun.com/exdb/mnist/> (the format is described at the bottom).

use std::io::Read;
use std::path::{Path, PathBuf};

use super::DataError;

/// An IDX array of unsigned bytes: its dimensions and its values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub values: Vec<u8>,
}

/// The kind of file expected, which fixes the number of dimensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdxKind {
    /// `[count, rows, cols]`, magic 0x00000803.
    Images,
    /// `[count]`, magic 0x00000801.
    Labels,
}

impl IdxKind {
    pub fn magic(self) -> u32 {
        match self {
            IdxKind::Images => 0x0000_0803,
            IdxKind::Labels => 0x0000_0801,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            IdxKind::Images => "an IDX image file (magic 0x00000803)",
            IdxKind::Labels => "an IDX label file (magic 0x00000801)",
        }
    }
}

/// Reads a whole file, decompressing it when its name ends in `.gz`.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let bytes = std::fs::read(path).map_err(io)?;
    if path.extension().is_some_and(|e| e == "gz") {
        gunzip(&bytes).map_err(|e| DataError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("not a valid gzip stream ({e})"),
        })
    } else {
        Ok(bytes)
    }
}

/// Decompresses a gzip stream held in memory.
pub fn gunzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len() * 4);
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out)?;
    Ok(out)
}

/// Parses an IDX file of the given kind from its (uncompressed) bytes. `path` only names the
/// file in errors.
pub fn parse(bytes: &[u8], kind: IdxKind, path: &Path) -> Result<IdxArray, DataError> {
    let corrupt = |reason: String| DataError::Corrupt {
        path: PathBuf::from(path),
        reason,
    };
    if bytes.len() < 4 {
        return Err(corrupt(format!(
            "file is {} bytes long, too short for an IDX header; expected {}",
            bytes.len(),
            kind.describe()
        )));
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if magic != kind.magic() {
        return Err(DataError::BadMagic {
            path: PathBuf::from(path),
            found: magic,
            expected: kind.describe(),
        });
    }
    let ndims = bytes[3] as usize;
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(corrupt(format!(
            "truncated header: {} bytes, expected at least {header}",
            bytes.len()
        )));
    }
    let dims: Vec<usize> = (0..ndims)
        .map(|i| {
            let o = 4 + 4 * i;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| corrupt(format!("dimensions {dims:?} overflow")))?;
    let found = bytes.len() - header;
    if found != expected {
        return Err(DataError::WrongLength {
            path: PathBuf::from(path),
            dims,
            expected,
            found,
        });
    }
    Ok(IdxArray {
        dims,
        values: bytes[header..].to_vec(),
    })
}

/// Encodes an IDX array (used to write subsets and test files).
pub fn encode(array: &IdxArray) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 4 * array.dims.len() + array.values.len());
    out.extend_from_slice(&[0, 0, 0x08, array.dims.len() as u8]);
    for &d in &array.dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(&array.values);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(values: &[u8]) -> Vec<u8> {
        encode(&IdxArray {
            dims: vec![values.len()],
            values: values.to_vec(),
        })
    }

    #[test]
    fn round_trip() {
        let a = IdxArray {
            dims: vec![2, 3, 2],
            values: (0..12).collect(),
        };
        let parsed = parse(&encode(&a), IdxKind::Images, Path::new("x")).unwrap();
        assert_eq!(parsed, a);
    }

    #[test]
    fn truncated_file_is_an_error_naming_the_lengths() {
        let mut bytes = labels(&[1, 2, 3, 4]);
        bytes.pop();
        let err = parse(&bytes, IdxKind::Labels, Path::new("l.idx")).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("l.idx") && msg.contains("need 4 bytes") && msg.contains("found 3"),
            "{msg}"
        );
    }

    #[test]
    fn wrong_kind_is_a_magic_error() {
        let bytes = labels(&[1, 2]);
        let err = parse(&bytes, IdxKind::Images, Path::new("f")).unwrap_err();
        assert!(
            matches!(err, DataError::BadMagic { found: 0x801, .. }),
            "{err}"
        );
    }

    #[test]
    fn tiny_and_empty_files_are_errors() {
        for bytes in [&[][..], &[0, 0][..], &[0, 0, 8, 3, 0][..]] {
            assert!(parse(bytes, IdxKind::Images, Path::new("f")).is_err());
        }
    }
}
