/*
 * plugins/e1000e/e1000e_regs.h — Intel 82574 (e1000e) registers, bits and
 * descriptor layouts, plus the tiny MMIO accessors every other file uses.
 *
 * Section numbers are those of the "Intel 82574 GbE Controller Family
 * Datasheet" (rev 3.4): chapter 10.2 is the register reference, 7.1 receive,
 * 7.2 transmit, 7.4 interrupts, 4.6 the software initialisation sequence.
 * Only what the plug-in uses is defined here.
 */
#ifndef NPA_PLUGINS_E1000E_REGS_H_
#define NPA_PLUGINS_E1000E_REGS_H_

#include <stdint.h>

/* ---- 10.2.2 general registers ---- */
#define E1K_CTRL 0x00000u     /* 10.2.2.1 Device Control */
#define E1K_STATUS 0x00008u   /* 10.2.2.2 Device Status */
#define E1K_EECD 0x00010u     /* 10.2.2.3 EEPROM/Flash Control */
#define E1K_EERD 0x00014u     /* 10.2.2.4 EEPROM Read */
#define E1K_CTRL_EXT 0x00018u /* 10.2.2.5 Extended Device Control */

#define E1K_CTRL_FD (1u << 0)
#define E1K_CTRL_GIO_MASTER_DISABLE (1u << 2)
#define E1K_CTRL_ASDE (1u << 5)
#define E1K_CTRL_SLU (1u << 6)
#define E1K_CTRL_FRCSPD (1u << 11)
#define E1K_CTRL_FRCDPLX (1u << 12)
#define E1K_CTRL_RST (1u << 26)
#define E1K_CTRL_VME (1u << 30)
#define E1K_CTRL_PHY_RST (1u << 31)

#define E1K_STATUS_FD (1u << 0)
#define E1K_STATUS_LU (1u << 1)
#define E1K_STATUS_SPEED_SHIFT 6
#define E1K_STATUS_SPEED_MASK (3u << 6)
#define E1K_STATUS_GIO_MASTER_ENABLE (1u << 19)

#define E1K_EECD_AUTO_RD (1u << 9)

#define E1K_EERD_START (1u << 0)
#define E1K_EERD_DONE (1u << 1)
#define E1K_EERD_ADDR_SHIFT 2
#define E1K_EERD_DATA_SHIFT 16

#define E1K_CTRL_EXT_EIAME (1u << 24) /* MSI-X: auto-mask IAM bits on firing */
#define E1K_CTRL_EXT_IAME (1u << 27)  /* auto-mask on ICR read */
#define E1K_CTRL_EXT_DRV_LOAD (1u << 28)
#define E1K_CTRL_EXT_PBA_CLR (1u << 31) /* MSI-X: clear PBA bit when a vector fires */

/* ---- 10.2.4 interrupt registers ---- */
#define E1K_ICR 0x000C0u  /* Interrupt Cause Read (write 1 to clear) */
#define E1K_ITR 0x000C4u
#define E1K_ICS 0x000C8u  /* Interrupt Cause Set */
#define E1K_IMS 0x000D0u  /* Interrupt Mask Set/Read */
#define E1K_IMC 0x000D8u  /* Interrupt Mask Clear */
#define E1K_EIAC 0x000DCu /* Extended Interrupt Auto Clear (MSI-X) */
#define E1K_IAM 0x000E0u  /* Interrupt Acknowledge Auto Mask */
#define E1K_IVAR 0x000E4u /* Interrupt Vector Allocation */
/* 10.2.4.x Extended Interrupt Throttle, one per MSI-X vector (5 on the
 * 82574); interval in 256 ns units, 0 = no throttling. */
#define E1K_EITR(n) (0x000E8u + 4u * (n))
#define E1K_NUM_EITR 5u

#define E1K_ICR_TXDW (1u << 0)
#define E1K_ICR_LSC (1u << 2)
#define E1K_ICR_RXDMT0 (1u << 4)
#define E1K_ICR_RXO (1u << 6)
#define E1K_ICR_RXT0 (1u << 7)
#define E1K_ICR_RXQ0 (1u << 20)
#define E1K_ICR_RXQ1 (1u << 21)
#define E1K_ICR_TXQ0 (1u << 22)
#define E1K_ICR_TXQ1 (1u << 23)
/* Queue q's RX cause (q < 2). */
#define E1K_ICR_RXQ(q) (E1K_ICR_RXQ0 << (q))
#define E1K_ICR_OTHER (1u << 24)

/* IVAR (10.2.4.9): 4-bit allocation fields, a 3-bit vector plus a valid bit. */
#define E1K_IVAR_VALID 0x8u
#define E1K_IVAR_RXQ0_SHIFT 0
#define E1K_IVAR_RXQ1_SHIFT 4
#define E1K_IVAR_TXQ0_SHIFT 8
#define E1K_IVAR_OTHER_SHIFT 16
#define E1K_IVAR_TX_EVERY_WB (1u << 31)

/* ---- 10.2.5 receive registers ---- */
/* The 82574 has two queue pairs: queue 1's ring registers (RDBAL1..RXDCTL1,
 * TDBAL1..TARC1) sit 0x100 above queue 0's. E1K_Q(E1K_RDT, 1) is RDT1. */
#define E1K_Q(reg, q) ((reg) + 0x100u * (q))
#define E1K_RCTL 0x00100u
#define E1K_RDBAL 0x02800u
#define E1K_RDBAH 0x02804u
#define E1K_RDLEN 0x02808u
#define E1K_RDH 0x02810u
#define E1K_RDT 0x02818u
#define E1K_RDTR 0x02820u
#define E1K_RXDCTL 0x02828u
#define E1K_RADV 0x0282Cu
#define E1K_RXCSUM 0x05000u
#define E1K_RFCTL 0x05008u
#define E1K_MTA(i) (0x05200u + 4u * (i)) /* 128 entries */
#define E1K_RAL(i) (0x05400u + 8u * (i)) /* 16 entries */
#define E1K_RAH(i) (0x05404u + 8u * (i))
#define E1K_VFTA(i) (0x05600u + 4u * (i)) /* 128 entries */
/* 10.2.5.x RSS: MRQC, the redirection table (128 one-byte entries packed
 * four to a register, entry 4n in RETA[n]'s low byte; bit 7 of an entry
 * is the queue) and the 40-byte random key (key byte 4n in RSSRK[n]'s
 * low byte: the register file is the key in byte order). */
#define E1K_MRQC 0x05818u
#define E1K_RETA(n) (0x05C00u + 4u * (n)) /* 32 registers */
#define E1K_RSSRK(n) (0x05C80u + 4u * (n)) /* 10 registers */
#define E1K_NUM_RETA 32u
#define E1K_NUM_RSSRK 10u
#define E1K_NUM_RA 16u
#define E1K_NUM_MTA 128u
#define E1K_NUM_VFTA 128u

#define E1K_RCTL_EN (1u << 1)
#define E1K_RCTL_SBP (1u << 2)
#define E1K_RCTL_UPE (1u << 3)
#define E1K_RCTL_MPE (1u << 4)
#define E1K_RCTL_LPE (1u << 5)
#define E1K_RCTL_DTYP_LEGACY (0u << 10)
#define E1K_RCTL_BAM (1u << 15)
#define E1K_RCTL_BSIZE_2048 (0u << 16) /* with BSEX = 0 */
#define E1K_RCTL_VFE (1u << 18)
#define E1K_RCTL_BSEX (1u << 25)
#define E1K_RCTL_SECRC (1u << 26)

#define E1K_RXCSUM_IPOFLD (1u << 8)
#define E1K_RXCSUM_TUOFLD (1u << 9)
#define E1K_RXCSUM_PCSD (1u << 13) /* the descriptor carries the RSS hash, not the packet checksum */
#define E1K_RFCTL_EXSTEN (1u << 15)
/* MRQC: bits 1:0 = 01 RSS; the hash types the 82574 has (no UDP; its
 * TCP/IPv6 hash is the "Ex" one, over extension-header addresses too). */
#define E1K_MRQC_RSS 0x1u
#define E1K_MRQC_TCPIPV4 (1u << 16)
#define E1K_MRQC_IPV4 (1u << 17)
#define E1K_MRQC_TCPIPV6EX (1u << 18)
#define E1K_MRQC_IPV6 (1u << 20)
#define E1K_RAH_AV (1u << 31)

/* ---- 10.2.6 transmit registers ---- */
#define E1K_TCTL 0x00400u
#define E1K_TIPG 0x00410u
#define E1K_TDBAL 0x03800u
#define E1K_TDBAH 0x03804u
#define E1K_TDLEN 0x03808u
#define E1K_TDH 0x03810u
#define E1K_TDT 0x03818u
#define E1K_TIDV 0x03820u
#define E1K_TXDCTL 0x03828u
#define E1K_TADV 0x0382Cu
/* TARC (10.2.6.11): bit 10 enables the queue's transmit arbitration (set
 * at reset for queue 0; QEMU's model sends nothing from a queue without it). */
#define E1K_TARC 0x03840u
#define E1K_TARC_ENABLE (1u << 10)

#define E1K_TCTL_EN (1u << 1)
#define E1K_TCTL_PSP (1u << 3)
#define E1K_TCTL_CT(x) ((uint32_t)(x) << 4)
#define E1K_TCTL_COLD(x) ((uint32_t)(x) << 12)
#define E1K_TCTL_RTLC (1u << 24)
/* IPGT 8, IPGR1 8, IPGR2 6: the copper values of 10.2.6.2. */
#define E1K_TIPG_DEFAULT (8u | (8u << 10) | (6u << 20))
/* TXDCTL (10.2.6.10): WTHRESH 1 so each RS descriptor is written back at
 * once, GRAN = descriptors, and bit 22, which the datasheet says must be 1. */
#define E1K_TXDCTL_VALUE ((1u << 16) | (1u << 22) | (1u << 24))

/* ---- 10.2.7 statistics (clear on read) ---- */
#define E1K_MPC 0x04010u  /* Missed Packets Count */
#define E1K_GPRC 0x04074u
#define E1K_GPTC 0x04080u

/* Everything above fits below this offset: the smallest BAR0 we accept. */
#define E1K_MMIO_MIN 0x06000u

/* ---- 7.1.5 extended receive descriptor (RFCTL.EXSTEN) ----
 * Extended rather than legacy because only its write-back carries the RSS
 * hash (with RXCSUM.PCSD), and because the device does RSS with it only
 * (QEMU's e1000e: RSS needs EXSTEN and PCSD). Read format: the buffer
 * address, then a zero quadword (DD clear). Write-back: MRQ (RSS type in
 * bits 3:0, 0 = not hashed), the RSS hash, extended status and errors,
 * length, VLAN tag. */
typedef union e1k_rx_desc {
  struct {
    uint64_t addr;
    uint64_t zero;
  } read;
  struct {
    uint32_t mrq;
    uint32_t rss;
    uint32_t status_error;
    uint16_t length;
    uint16_t vlan;
  } wb;
} e1k_rx_desc;
_Static_assert(sizeof(e1k_rx_desc) == 16, "7.1.5: 16-byte RX descriptor");
#define E1K_RXD_MRQ_TYPE 0xfu

#define E1K_RXD_STAT_DD (1u << 0)
#define E1K_RXD_STAT_EOP (1u << 1)
#define E1K_RXD_STAT_IXSM (1u << 2) /* ignore checksum indications */
#define E1K_RXD_STAT_UDPCS (1u << 4)
#define E1K_RXD_STAT_TCPCS (1u << 5)
#define E1K_RXD_STAT_IPCS (1u << 6)
/* Extended errors: status_error bits 31:24 (the legacy errors byte, moved). */
#define E1K_RXD_ERR_CE (1u << 24)
#define E1K_RXD_ERR_SE (1u << 25)
#define E1K_RXD_ERR_SEQ (1u << 26)
#define E1K_RXD_ERR_CXE (1u << 28)
#define E1K_RXD_ERR_TCPE (1u << 29)
#define E1K_RXD_ERR_IPE (1u << 30)
#define E1K_RXD_ERR_RXE (1u << 31)
#define E1K_RXD_ERR_FRAME \
  (E1K_RXD_ERR_CE | E1K_RXD_ERR_SE | E1K_RXD_ERR_SEQ | E1K_RXD_ERR_CXE | E1K_RXD_ERR_RXE)

/* ---- 7.2 transmit descriptors: legacy, TCP/IP context, TCP/IP data ---- */
typedef struct e1k_tx_desc {
  uint64_t addr;  /* context: IPCSS/IPCSO/IPCSE, TUCSS/TUCSO/TUCSE */
  uint32_t lower; /* legacy: length|CSO|CMD; ext: DTALEN/PAYLEN|DTYP|DCMD/TUCMD */
  uint32_t upper; /* STA|CSS or POPTS|special/VLAN; context: STA|HDRLEN|MSS */
} e1k_tx_desc;
_Static_assert(sizeof(e1k_tx_desc) == 16, "7.2: 16-byte TX descriptor");

#define E1K_TXD_CMD_EOP (1u << 24)
#define E1K_TXD_CMD_IFCS (1u << 25)
#define E1K_TXD_CMD_TCP (1u << 24) /* context TUCMD: L4 is TCP (else UDP) */
#define E1K_TXD_CMD_RS (1u << 27)
#define E1K_TXD_CMD_DEXT (1u << 29)
#define E1K_TXD_DTYP_CTX (0u << 20)
#define E1K_TXD_DTYP_DATA (1u << 20)
#define E1K_TXD_STA_DD (1u << 0)
#define E1K_TXD_POPTS_TXSM (1u << 9) /* in upper: POPTS bits 15:8, TXSM = bit 1 */

/* ---- MMIO accessors ----
 * BAR0 is mapped uncached by VFIO, so each access is one PCIe transaction and
 * volatile keeps the compiler from merging or reordering them. */
static inline uint32_t e1k_rd32(volatile uint8_t *bar, uint32_t reg) {
  return *(volatile uint32_t *)(bar + reg);
}
static inline void e1k_wr32(volatile uint8_t *bar, uint32_t reg, uint32_t v) {
  *(volatile uint32_t *)(bar + reg) = v;
}
/* Posted writes reach the device before a read of STATUS completes (PCIe
 * ordering): used after a write whose effect the next step depends on. */
static inline void e1k_flush(volatile uint8_t *bar) { (void)e1k_rd32(bar, E1K_STATUS); }

/* Descriptor memory is ordinary write-back memory shared with the device.
 * wmb: descriptor stores must be visible before the doorbell (tail) store
 * that hands them over. rmb: after seeing DD, the other descriptor fields the
 * device wrote must not be read from before the DD load. x86 keeps both
 * orders for these accesses, so on x86 these are compiler barriers. */
static inline void e1k_wmb(void) { __atomic_thread_fence(__ATOMIC_RELEASE); }
static inline void e1k_rmb(void) { __atomic_thread_fence(__ATOMIC_ACQUIRE); }

#endif /* NPA_PLUGINS_E1000E_REGS_H_ */
