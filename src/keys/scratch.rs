//! Transient byte buffers for the key directory's fetch and parse, mapped straight from the OS and
//! unmapped when dropped. A JWKS of 100,000 keys is ~14 MB of text plus a few MB of scratch; made
//! on the allocator's heap, those pages stay resident after they are freed (mimalloc purges a
//! thread's freed pages only on that thread's later allocations, and the directory's thread sleeps
//! until its next refresh), doubling what the key set costs. Not for anything kept.

use std::ops::Deref;

use memmap2::MmapMut;

/// A growable byte buffer in its own anonymous mapping.
pub(crate) struct Scratch {
    map: Option<MmapMut>,
    len: usize,
}

impl Scratch {
    pub(crate) const fn new() -> Self {
        Self { map: None, len: 0 }
    }

    /// Room for `capacity` bytes without remapping.
    pub(crate) fn with_capacity(capacity: usize) -> Result<Self, String> {
        let mut s = Self::new();
        s.reserve(capacity)?;
        Ok(s)
    }

    /// `len` zero bytes (fresh anonymous pages read as zero).
    pub(crate) fn zeroed(len: usize) -> Result<Self, String> {
        let mut s = Self::with_capacity(len)?;
        s.len = len;
        Ok(s)
    }

    pub(crate) fn capacity(&self) -> usize {
        self.map.as_ref().map_or(0, |m| m.len())
    }

    /// Room for `additional` more bytes: a new mapping of at least twice the size, the bytes
    /// copied over and the old mapping returned to the OS at once.
    pub(crate) fn reserve(&mut self, additional: usize) -> Result<(), String> {
        let need = self
            .len
            .checked_add(additional)
            .ok_or("buffer size overflows")?;
        if need <= self.capacity() || need == 0 {
            return Ok(());
        }
        let size = need.max(self.capacity().saturating_mul(2));
        let mut map =
            MmapMut::map_anon(size).map_err(|e| format!("cannot map {size} bytes: {e}"))?;
        if let (Some(old), Some(to)) = (&self.map, map.get_mut(..self.len)) {
            to.copy_from_slice(&old[..self.len]);
        }
        self.map = Some(map);
        Ok(())
    }

    pub(crate) fn extend_from_slice(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.reserve(bytes.len())?;
        if let Some(to) = self
            .map
            .as_mut()
            .and_then(|m| m.get_mut(self.len..self.len + bytes.len()))
        {
            to.copy_from_slice(bytes);
            self.len += bytes.len();
        }
        Ok(())
    }

    /// The capacity not yet filled; `advance` after writing into its start.
    pub(crate) fn spare_mut(&mut self) -> &mut [u8] {
        match &mut self.map {
            Some(m) => m.get_mut(self.len..).unwrap_or_default(),
            None => &mut [],
        }
    }

    /// Marks `n` more bytes of the spare capacity as filled.
    pub(crate) fn advance(&mut self, n: usize) {
        self.len = (self.len + n).min(self.capacity());
    }

    /// The filled bytes, writable.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        match &mut self.map {
            Some(m) => m.get_mut(..self.len).unwrap_or_default(),
            None => &mut [],
        }
    }
}

impl Deref for Scratch {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.map {
            Some(m) => m.get(..self.len).unwrap_or_default(),
            None => &[],
        }
    }
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scratch")
            .field("len", &self.len)
            .field("capacity", &self.capacity())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_keeps_bytes_and_reads_zero_where_unwritten() {
        let mut s = Scratch::new();
        assert!(s.is_empty() && s.capacity() == 0);
        s.extend_from_slice(b"").unwrap();
        assert_eq!(s.capacity(), 0, "nothing mapped for nothing");
        for i in 0..10_000u32 {
            s.extend_from_slice(&i.to_le_bytes()).unwrap();
        }
        assert_eq!(s.len(), 40_000);
        assert!(
            s.chunks(4)
                .enumerate()
                .all(|(i, c)| c == (i as u32).to_le_bytes())
        );
        let cap = s.capacity();
        assert!((40_000..=2 * 40_000 + 4096).contains(&cap), "{cap}");

        let mut z = Scratch::zeroed(100).unwrap();
        assert!(z.len() == 100 && z.iter().all(|&b| b == 0));
        z.as_mut_slice()[99] = 7;
        assert_eq!(z[99], 7);

        let mut r = Scratch::with_capacity(10).unwrap();
        assert!(r.is_empty());
        r.spare_mut()[..3].copy_from_slice(b"abc");
        r.advance(3);
        r.advance(usize::MAX / 2);
        assert_eq!(r.len(), r.capacity(), "never past the mapping");
        assert_eq!(&r[..3], b"abc");
        assert!(Scratch::new().reserve(usize::MAX).is_err());
    }
}
