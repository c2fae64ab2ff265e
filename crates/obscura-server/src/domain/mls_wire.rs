//! A length check of client MLS bytes that runs before `openmls` sees them. openmls 0.8 reads
//! PublicMessages, proposals, extensions and credentials with reader-based decoders that
//! reserve whatever a vector claims (up to 2^30 - 1 bytes) before reading it, even behind its
//! slice-based entry points. This module walks the wire grammar of RFC 9420 (§6 framing, §7
//! leaf nodes and trees, §10 KeyPackages, §12 proposals and commits, §12.4.3 Welcome and
//! GroupInfo) over a zero-copy cursor and refuses any message in which a vector's varint length
//! (§2.1.2) is not minimal or exceeds what is left of its enclosing structure, and any
//! structure that does not fill its vector exactly. The walk follows the grammar openmls reads
//! (its known extensions included, which it reads without checking that they fill their data),
//! so every length openmls will read has been checked against the input first. Nothing here
//! allocates.

/// The client bytes are not well-formed MLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

type Walk<T = ()> = Result<T, Malformed>;

/// Wire formats of RFC 9420 §6.
const PUBLIC_MESSAGE: u16 = 1;
const PRIVATE_MESSAGE: u16 = 2;
const WELCOME: u16 = 3;
const GROUP_INFO: u16 = 4;
const KEY_PACKAGE: u16 = 5;

/// Content types (§6) and sender types (§6.1).
const APPLICATION: u8 = 1;
const PROPOSAL: u8 = 2;
const COMMIT: u8 = 3;
const MEMBER: u8 = 1;

/// openmls counts an extension of exactly this many data bytes as having a 4-byte length
/// prefix (the varint takes 2), so its position would drift from ours: refused.
const EXTENSION_LENGTH_OPENMLS_MISCOUNTS: usize = 0x3fff;

/// Checks an `MLSMessage` (version, wire format, body) and returns the bytes after it.
pub fn mls_message(bytes: &[u8]) -> Walk<&[u8]> {
    let mut c = Cursor(bytes);
    c.u16()?;
    match c.u16()? {
        PUBLIC_MESSAGE => public_message(&mut c)?,
        PRIVATE_MESSAGE => private_message(&mut c)?,
        WELCOME => welcome(&mut c)?,
        GROUP_INFO => group_info(&mut c)?,
        KEY_PACKAGE => key_package(&mut c)?,
        _ => return Err(Malformed),
    }
    Ok(c.0)
}

/// Checks a bare KeyPackage that must fill `bytes`.
pub fn bare_key_package(bytes: &[u8]) -> Walk {
    let mut c = Cursor(bytes);
    key_package(&mut c)?;
    c.end()
}

/// The unread part of a structure: reads only what is there.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Walk<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n).ok_or(Malformed)?;
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Walk<[u8; N]> {
        self.take(N)?.try_into().map_err(|_| Malformed)
    }

    fn u8(&mut self) -> Walk<u8> {
        self.array::<1>().map(|[b]| b)
    }

    fn u16(&mut self) -> Walk<u16> {
        self.array().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Walk<u32> {
        self.array().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Walk<u64> {
        self.array().map(u64::from_be_bytes)
    }

    /// A `<V>` vector: a minimal 1-, 2- or 4-byte varint length that fits in what is left.
    fn vector(&mut self) -> Walk<Cursor<'a>> {
        let first = self.u8()?;
        let low = usize::from(first & 0x3f);
        let (length, least) = match first >> 6 {
            0 => (low, 0),
            1 => ((low << 8) | usize::from(self.u8()?), 0x40),
            2 => {
                let [a, b, c] = self.array()?;
                ((low << 24) | (usize::from(a) << 16) | (usize::from(b) << 8) | usize::from(c), 0x4000)
            }
            _ => return Err(Malformed),
        };
        if length < least {
            return Err(Malformed);
        }
        self.take(length).map(Cursor)
    }

    /// An `opaque<V>`.
    fn opaque(&mut self) -> Walk<&'a [u8]> {
        self.vector().map(|v| v.0)
    }

    /// A vector of `each`, which must fill it exactly.
    fn list(&mut self, mut each: impl FnMut(&mut Cursor<'a>) -> Walk) -> Walk {
        let mut items = self.vector()?;
        while !items.0.is_empty() {
            each(&mut items)?;
        }
        Ok(())
    }

    /// An `optional<T>` (§2.1.1): a presence byte of 0 or 1.
    fn optional(&mut self, some: impl FnOnce(&mut Cursor<'a>) -> Walk) -> Walk {
        match self.u8()? {
            0 => Ok(()),
            1 => some(self),
            _ => Err(Malformed),
        }
    }

    fn end(&self) -> Walk {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Malformed)
        }
    }
}

fn u16_list(c: &mut Cursor<'_>) -> Walk {
    c.list(|c| c.u16().map(drop))
}

/// §6.2 PublicMessage: FramedContent, FramedContentAuthData, membership tag of members.
fn public_message(c: &mut Cursor<'_>) -> Walk {
    let (sender, content_type) = framed_content(c)?;
    c.opaque()?;
    if content_type == COMMIT {
        c.opaque()?;
    }
    if sender == MEMBER {
        c.opaque()?;
    }
    Ok(())
}

/// §6 FramedContent; returns its sender type and content type.
fn framed_content(c: &mut Cursor<'_>) -> Walk<(u8, u8)> {
    c.opaque()?;
    c.u64()?;
    let sender = c.u8()?;
    match sender {
        1 | 2 => c.u32().map(drop)?,
        3 | 4 => {}
        _ => return Err(Malformed),
    }
    c.opaque()?;
    let content_type = c.u8()?;
    match content_type {
        APPLICATION => c.opaque().map(drop)?,
        PROPOSAL => proposal(c)?,
        COMMIT => commit(c)?,
        _ => return Err(Malformed),
    }
    Ok((sender, content_type))
}

/// §6.3 PrivateMessage: everything past the header is opaque.
fn private_message(c: &mut Cursor<'_>) -> Walk {
    c.opaque()?;
    c.u64()?;
    c.u8()?;
    for _ in 0..3 {
        c.opaque()?;
    }
    Ok(())
}

/// §12.1 Proposal, with openmls' SelfRemove (no body) and custom types (one opaque payload).
fn proposal(c: &mut Cursor<'_>) -> Walk {
    match c.u16()? {
        1 => key_package(c),
        2 => leaf_node(c),
        3 => c.u32().map(drop),
        4 => pre_shared_key_id(c),
        5 => {
            c.opaque()?;
            c.u16()?;
            c.u16()?;
            extensions(c)
        }
        6 => c.opaque().map(drop),
        7 => extensions(c),
        0x000a => Ok(()),
        _ => c.opaque().map(drop),
    }
}

/// §8.4 PreSharedKeyID.
fn pre_shared_key_id(c: &mut Cursor<'_>) -> Walk {
    match c.u8()? {
        1 => c.opaque().map(drop)?,
        2 => {
            if !(1..=3).contains(&c.u8()?) {
                return Err(Malformed);
            }
            c.opaque()?;
            c.u64()?;
        }
        _ => return Err(Malformed),
    }
    c.opaque().map(drop)
}

/// §12.4 Commit: proposals or references, optional UpdatePath.
fn commit(c: &mut Cursor<'_>) -> Walk {
    c.list(|c| match c.u8()? {
        1 => proposal(c),
        2 => c.opaque().map(drop),
        _ => Err(Malformed),
    })?;
    c.optional(|c| {
        leaf_node(c)?;
        c.list(|c| {
            c.opaque()?;
            c.list(hpke_ciphertext)
        })
    })
}

fn hpke_ciphertext(c: &mut Cursor<'_>) -> Walk {
    c.opaque()?;
    c.opaque().map(drop)
}

/// §7.2 LeafNode.
fn leaf_node(c: &mut Cursor<'_>) -> Walk {
    c.opaque()?;
    c.opaque()?;
    credential(c)?;
    for _ in 0..5 {
        u16_list(c)?;
    }
    match c.u8()? {
        1 => {
            c.u64()?;
            c.u64()?;
        }
        2 => {}
        3 => c.opaque().map(drop)?,
        _ => return Err(Malformed),
    }
    extensions(c)?;
    c.opaque().map(drop)
}

/// §5.3 Credential: a basic identity, X.509 certificates, or another type's opaque content.
fn credential(c: &mut Cursor<'_>) -> Walk {
    let kind = c.u16()?;
    let mut content = c.vector()?;
    if kind == 2 {
        while !content.0.is_empty() {
            content.opaque()?;
        }
    }
    Ok(())
}

/// §7.2 Extension list. The extensions openmls understands are walked inside their data.
fn extensions(c: &mut Cursor<'_>) -> Walk {
    c.list(|c| {
        let kind = c.u16()?;
        let mut data = c.vector()?;
        if data.0.len() == EXTENSION_LENGTH_OPENMLS_MISCOUNTS {
            return Err(Malformed);
        }
        match kind {
            1 | 4 => data.opaque().map(drop)?,
            2 => data.list(|c| c.optional(tree_node))?,
            3 => {
                for _ in 0..3 {
                    u16_list(&mut data)?;
                }
            }
            5 => data.list(|c| {
                c.opaque()?;
                credential(c)
            })?,
            10 => {}
            _ => return Ok(()),
        }
        data.end()
    })
}

/// §7.8 a node of a ratchet tree.
fn tree_node(c: &mut Cursor<'_>) -> Walk {
    match c.u8()? {
        1 => leaf_node(c),
        2 => {
            c.opaque()?;
            c.opaque()?;
            c.list(|c| c.u32().map(drop))
        }
        _ => Err(Malformed),
    }
}

/// §10 KeyPackage.
fn key_package(c: &mut Cursor<'_>) -> Walk {
    c.u16()?;
    c.u16()?;
    c.opaque()?;
    leaf_node(c)?;
    extensions(c)?;
    c.opaque().map(drop)
}

/// §12.4.3.1 Welcome.
fn welcome(c: &mut Cursor<'_>) -> Walk {
    c.u16()?;
    c.list(|c| {
        c.opaque()?;
        hpke_ciphertext(c)
    })?;
    c.opaque().map(drop)
}

/// §12.4.3 GroupInfo with its §8.1 GroupContext.
fn group_info(c: &mut Cursor<'_>) -> Walk {
    c.u16()?;
    c.u16()?;
    c.opaque()?;
    c.u64()?;
    c.opaque()?;
    c.opaque()?;
    extensions(c)?;
    extensions(c)?;
    c.opaque()?;
    c.u32()?;
    c.opaque().map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vector_length_must_fit_and_be_minimal() {
        let fits = |bytes: &[u8]| Cursor(bytes).vector().map(|v| v.0.len());
        assert_eq!(fits(&[0x03, 1, 2, 3]), Ok(3));
        assert_eq!(fits(&[0x04, 1, 2, 3]), Err(Malformed));
        assert_eq!(fits(&[0x40, 0x03, 1, 2, 3]), Err(Malformed), "2-byte form of a 1-byte length");
        assert_eq!(fits(&[0x80, 0x00, 0x00, 0x03, 1, 2, 3]), Err(Malformed));
        assert_eq!(fits(&[0xbf, 0xff, 0xff, 0xff, 1, 2, 3]), Err(Malformed));
        assert_eq!(fits(&[0xc0, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3]), Err(Malformed), "8-byte lengths exceed MLS");
        assert_eq!(fits(&[]), Err(Malformed));
    }

    #[test]
    fn a_structure_must_fill_its_vector() {
        // Capabilities' versions: a vector of u16 whose length is odd.
        assert_eq!(u16_list(&mut Cursor(&[0x03, 0, 1, 0])), Err(Malformed));
        assert_eq!(u16_list(&mut Cursor(&[0x02, 0, 1])), Ok(()));
        // An application-id extension with a byte after its id.
        assert_eq!(extensions(&mut Cursor(&[0x05, 0, 1, 0x02, 0x00, 0xff])), Err(Malformed));
        assert_eq!(extensions(&mut Cursor(&[0x04, 0, 1, 0x01, 0x00])), Ok(()));
    }
}
