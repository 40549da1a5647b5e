//! The SIOCETHTOOL ioctl: interrupt coalescing and the LRO/GRO offload state, read here for
//! inspect and set by apply's NIC knobs (nearnative-knob), so both share one copy of the
//! kernel's structs.
//!
//! Only the running host answers an ioctl, so callers use this when the root is live. The
//! structs mirror `linux/ethtool.h` field for field (`#[repr(C)]`). Features are looked up
//! by name (`rx-lro`, `rx-gro`, `rx-gro-hw`) through the `ETH_SS_FEATURES` string set, as
//! their bit positions change between kernels; drivers that predate it answer the legacy
//! `ETHTOOL_GFLAGS` / `ETHTOOL_GGRO` instead.

use std::ffi::c_void;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::libc;
use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};

use super::{Coalescing, Offloads};

const ETHTOOL_GCOALESCE: u32 = 0x0e;
const ETHTOOL_SCOALESCE: u32 = 0x0f;
const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GFLAGS: u32 = 0x25;
const ETHTOOL_SFLAGS: u32 = 0x26;
const ETHTOOL_GGRO: u32 = 0x2b;
const ETHTOOL_SGRO: u32 = 0x2c;
const ETHTOOL_GSSET_INFO: u32 = 0x37;
const ETHTOOL_GFEATURES: u32 = 0x3a;
const ETHTOOL_SFEATURES: u32 = 0x3b;
const ETH_SS_FEATURES: u32 = 4;
const ETH_GSTRING_LEN: usize = 32;
const ETH_FLAG_LRO: u32 = 1 << 15;
/// More feature names than any kernel has (about 70 in 6.x): a bound on the buffers we size
/// from the kernel's answer.
const MAX_FEATURES: u32 = 1024;

nix::ioctl_readwrite_bad!(siocethtool, libc::SIOCETHTOOL, libc::ifreq);

/// `struct ethtool_coalesce`.
#[repr(C)]
#[derive(Default)]
struct EthtoolCoalesce {
    cmd: u32,
    rx_coalesce_usecs: u32,
    rx_max_coalesced_frames: u32,
    rx_coalesce_usecs_irq: u32,
    rx_max_coalesced_frames_irq: u32,
    tx_coalesce_usecs: u32,
    tx_max_coalesced_frames: u32,
    tx_coalesce_usecs_irq: u32,
    tx_max_coalesced_frames_irq: u32,
    stats_block_coalesce_usecs: u32,
    use_adaptive_rx_coalesce: u32,
    use_adaptive_tx_coalesce: u32,
    pkt_rate_low: u32,
    rx_coalesce_usecs_low: u32,
    rx_max_coalesced_frames_low: u32,
    tx_coalesce_usecs_low: u32,
    tx_max_coalesced_frames_low: u32,
    pkt_rate_high: u32,
    rx_coalesce_usecs_high: u32,
    rx_max_coalesced_frames_high: u32,
    tx_coalesce_usecs_high: u32,
    tx_max_coalesced_frames_high: u32,
    rate_sample_interval: u32,
}

/// `struct ethtool_value`.
#[repr(C)]
#[derive(Default)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// `struct ethtool_sset_info` asking for one string set, so `data` has one entry.
#[repr(C)]
#[derive(Default)]
struct EthtoolSsetInfo {
    cmd: u32,
    reserved: u32,
    sset_mask: u64,
    data: [u32; 1],
}

/// A socket to address ethtool requests to interfaces by name.
pub struct EthtoolSocket {
    fd: OwnedFd,
}

impl EthtoolSocket {
    pub fn open() -> Result<Self, Errno> {
        let fd = socket(
            AddressFamily::Inet,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        Ok(EthtoolSocket { fd })
    }

    pub fn coalescing(&self, ifname: &str) -> Result<Coalescing, Errno> {
        let mut c = EthtoolCoalesce {
            cmd: ETHTOOL_GCOALESCE,
            ..EthtoolCoalesce::default()
        };
        // SAFETY: `c` is a live, exclusively borrowed `struct ethtool_coalesce`, the exact
        // size the kernel copies back for ETHTOOL_GCOALESCE.
        unsafe { self.request(ifname, (&mut c as *mut EthtoolCoalesce).cast()) }?;
        Ok(Coalescing {
            rx_usecs: c.rx_coalesce_usecs,
            rx_frames: c.rx_max_coalesced_frames,
            tx_usecs: c.tx_coalesce_usecs,
            tx_frames: c.tx_max_coalesced_frames,
            adaptive_rx: c.use_adaptive_rx_coalesce != 0,
            adaptive_tx: c.use_adaptive_tx_coalesce != 0,
        })
    }

    /// LRO and GRO state from the named features, or from the legacy calls.
    pub fn offloads(&self, ifname: &str) -> Result<Offloads, Errno> {
        match self.feature_names(ifname) {
            Ok(names) => self.offloads_from_features(ifname, &names),
            Err(Errno::EOPNOTSUPP) => self.legacy_offloads(ifname),
            Err(err) => Err(err),
        }
    }

    /// Sets the six coalescing values nearnative manages; the driver's other parameters are
    /// read first and written back unchanged.
    pub fn set_coalescing(&self, ifname: &str, wanted: &Coalescing) -> Result<(), Errno> {
        let mut c = EthtoolCoalesce {
            cmd: ETHTOOL_GCOALESCE,
            ..EthtoolCoalesce::default()
        };
        // SAFETY: as in `coalescing`: a live `struct ethtool_coalesce` for GCOALESCE.
        unsafe { self.request(ifname, (&mut c as *mut EthtoolCoalesce).cast()) }?;
        c.cmd = ETHTOOL_SCOALESCE;
        c.rx_coalesce_usecs = wanted.rx_usecs;
        c.rx_max_coalesced_frames = wanted.rx_frames;
        c.tx_coalesce_usecs = wanted.tx_usecs;
        c.tx_max_coalesced_frames = wanted.tx_frames;
        c.use_adaptive_rx_coalesce = u32::from(wanted.adaptive_rx);
        c.use_adaptive_tx_coalesce = u32::from(wanted.adaptive_tx);
        // SAFETY: the same struct, which SCOALESCE only reads.
        unsafe { self.request(ifname, (&mut c as *mut EthtoolCoalesce).cast()) }
    }

    /// Switches LRO (`lro == true`) or GRO on or off, by feature name, or through the legacy
    /// calls on drivers without named features. EOPNOTSUPP when the kernel has no such
    /// feature.
    pub fn set_offload(&self, ifname: &str, lro: bool, on: bool) -> Result<(), Errno> {
        let names = match self.feature_names(ifname) {
            Ok(names) => names,
            Err(Errno::EOPNOTSUPP) => return self.set_legacy_offload(ifname, lro, on),
            Err(err) => return Err(err),
        };
        let feature = if lro { "rx-lro" } else { "rx-gro" };
        let bit = names
            .iter()
            .position(|n| n == feature)
            .ok_or(Errno::EOPNOTSUPP)?;
        let blocks = names.len().div_ceil(32);
        // struct ethtool_sfeatures: cmd, size, then `size` blocks of {valid, requested}.
        let mut buffer = vec![0u32; 2 + 2 * blocks];
        buffer[..2].copy_from_slice(&[ETHTOOL_SFEATURES, blocks as u32]);
        buffer[2 + 2 * (bit / 32)] = 1 << (bit % 32);
        if on {
            buffer[2 + 2 * (bit / 32) + 1] = 1 << (bit % 32);
        }
        // SAFETY: the buffer holds the header and `blocks` two-word blocks, as `size` says;
        // SFEATURES reads them and writes nothing back beyond them.
        unsafe { self.request(ifname, buffer.as_mut_ptr().cast()) }
    }

    fn set_legacy_offload(&self, ifname: &str, lro: bool, on: bool) -> Result<(), Errno> {
        let (cmd, data) = match lro {
            true => {
                let flags = self.value(ifname, ETHTOOL_GFLAGS)?;
                let flags = match on {
                    true => flags | ETH_FLAG_LRO,
                    false => flags & !ETH_FLAG_LRO,
                };
                (ETHTOOL_SFLAGS, flags)
            }
            false => (ETHTOOL_SGRO, u32::from(on)),
        };
        let mut value = EthtoolValue { cmd, data };
        // SAFETY: `value` is a live `struct ethtool_value`, what SFLAGS and SGRO read.
        unsafe { self.request(ifname, (&mut value as *mut EthtoolValue).cast()) }
    }

    fn feature_names(&self, ifname: &str) -> Result<Vec<String>, Errno> {
        let mut info = EthtoolSsetInfo {
            cmd: ETHTOOL_GSSET_INFO,
            sset_mask: 1 << ETH_SS_FEATURES,
            ..EthtoolSsetInfo::default()
        };
        // SAFETY: `info` is a live `struct ethtool_sset_info` with room for the one count
        // the kernel writes for the one string set in `sset_mask`.
        unsafe { self.request(ifname, (&mut info as *mut EthtoolSsetInfo).cast()) }?;
        if info.sset_mask == 0 {
            return Err(Errno::EOPNOTSUPP);
        }
        let count = info.data[0];
        if count > MAX_FEATURES {
            return Err(Errno::E2BIG);
        }
        // struct ethtool_gstrings: cmd, string_set, len, then len * 32 bytes of names.
        let mut buffer = vec![0u32; 3 + count as usize * ETH_GSTRING_LEN / 4];
        buffer[..3].copy_from_slice(&[ETHTOOL_GSTRINGS, ETH_SS_FEATURES, count]);
        // SAFETY: the buffer is a `struct ethtool_gstrings` header followed by `count`
        // 32-byte strings, which is all the kernel writes for a set of `count` strings.
        unsafe { self.request(ifname, buffer.as_mut_ptr().cast()) }?;
        let bytes: Vec<u8> = buffer[3..].iter().flat_map(|w| w.to_ne_bytes()).collect();
        Ok(bytes
            .chunks(ETH_GSTRING_LEN)
            .map(|name| {
                let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
                String::from_utf8_lossy(&name[..end]).into_owned()
            })
            .collect())
    }

    fn offloads_from_features(&self, ifname: &str, names: &[String]) -> Result<Offloads, Errno> {
        let blocks = names.len().div_ceil(32);
        // struct ethtool_gfeatures: cmd, size, then `size` blocks of {available, requested,
        // active, never_changed}.
        let mut buffer = vec![0u32; 2 + 4 * blocks];
        buffer[..2].copy_from_slice(&[ETHTOOL_GFEATURES, blocks as u32]);
        // SAFETY: the buffer holds the header and `blocks` four-word feature blocks, as many
        // as `size` tells the kernel it may write.
        unsafe { self.request(ifname, buffer.as_mut_ptr().cast()) }?;
        let active = |feature: &str| -> Option<bool> {
            let bit = names.iter().position(|n| n == feature)?;
            let word = buffer.get(2 + 4 * (bit / 32) + 2)?;
            Some(word & (1 << (bit % 32)) != 0)
        };
        Ok(Offloads {
            lro: active("rx-lro"),
            gro: active("rx-gro"),
            hw_gro: active("rx-gro-hw"),
        })
    }

    fn legacy_offloads(&self, ifname: &str) -> Result<Offloads, Errno> {
        let flags = self.value(ifname, ETHTOOL_GFLAGS)?;
        let gro = self.value(ifname, ETHTOOL_GGRO)?;
        Ok(Offloads {
            lro: Some(flags & ETH_FLAG_LRO != 0),
            gro: Some(gro != 0),
            hw_gro: None,
        })
    }

    fn value(&self, ifname: &str, cmd: u32) -> Result<u32, Errno> {
        let mut value = EthtoolValue { cmd, data: 0 };
        // SAFETY: `value` is a live `struct ethtool_value`, what GFLAGS and GGRO write.
        unsafe { self.request(ifname, (&mut value as *mut EthtoolValue).cast()) }?;
        Ok(value.data)
    }

    /// Sends one ethtool command for `ifname`.
    ///
    /// # Safety
    /// `data` must point to a live, writable buffer laid out as the ethtool struct that its
    /// leading `cmd` word selects, large enough for everything the kernel writes for it.
    unsafe fn request(&self, ifname: &str, data: *mut c_void) -> Result<(), Errno> {
        let name = ifname.as_bytes();
        if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(&0) {
            return Err(Errno::EINVAL);
        }
        // SAFETY: ifreq is plain old data (a name array and a union of integers, sockaddrs
        // and a pointer); all zeroes is a valid value.
        let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, &src) in request.ifr_name.iter_mut().zip(name) {
            *dst = src as libc::c_char;
        }
        request.ifr_ifru.ifru_data = data.cast();
        // SAFETY: `request` is a valid ifreq whose name is NUL-terminated (zeroed, shorter
        // than IFNAMSIZ) and whose data pointer satisfies this function's contract; the
        // kernel reads the name and writes only through that pointer.
        unsafe { siocethtool(self.fd.as_raw_fd(), &mut request) }?;
        Ok(())
    }
}
