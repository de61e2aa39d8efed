#include "hypervisor/vhost/guest_memory.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <string>

#include "gtest/gtest.h"

namespace npa::agent {
namespace {

UniqueFd MemFd(size_t size) {
  UniqueFd fd(memfd_create("gm-test", MFD_CLOEXEC));
  EXPECT_EQ(ftruncate(fd.get(), size), 0);
  return fd;
}

std::vector<UniqueFd> Fds(std::initializer_list<size_t> sizes) {
  std::vector<UniqueFd> v;
  for (size_t s : sizes) v.push_back(MemFd(s));
  return v;
}

TEST(GuestMemoryTest, MapsAndTranslatesInsideOneRegion) {
  npa_vhost_memory_region r[2] = {{0x100000, 0x10000, 0x7f0000000000, 0},
                                  {0x200000, 0x10000, 0x7f0000100000, 0x1000}};
  auto mem = GuestMemory::Map({r, 2}, Fds({0x10000, 0x11000}), "g");
  ASSERT_TRUE(mem.ok()) << mem.status();
  uint32_t hint = 0;
  uint8_t* p = (*mem)->GpaToHost(0x100000, 0x10000, &hint);
  ASSERT_NE(p, nullptr);
  p[0] = 1;
  p[0xffff] = 2;  // last byte is mapped
  EXPECT_EQ((*mem)->GpaToHost(0x100001, 0x10000, &hint), nullptr);  // one past the end
  EXPECT_EQ((*mem)->GpaToHost(0xfffff, 2, &hint), nullptr);         // starts before
  EXPECT_EQ((*mem)->GpaToHost(0x110000, 0, &hint), nullptr);        // end address, len 0
  EXPECT_NE((*mem)->GpaToHost(0x200000 + 0xfff0, 16, &hint), nullptr);
  EXPECT_EQ(hint, 1u);  // cached the last hit
  EXPECT_EQ((*mem)->GpaToHost(~0ull - 4, 16, &hint), nullptr);      // wraps 2^64
  EXPECT_EQ((*mem)->GpaToHost(0x100000, ~0ull, &hint), nullptr);
  EXPECT_EQ((*mem)->UvaToHost(0x7f0000000000 + 8, 8), p + 8);
  EXPECT_EQ((*mem)->UvaToHost(0x7f0000000000 + 0xfff8, 16), nullptr);
}

TEST(GuestMemoryTest, AdjacentRegionsDoNotJoin) {
  npa_vhost_memory_region r[2] = {{0x0, 0x1000, 0x10000, 0}, {0x1000, 0x1000, 0x11000, 0}};
  auto mem = GuestMemory::Map({r, 2}, Fds({0x1000, 0x1000}), "g");
  ASSERT_TRUE(mem.ok()) << mem.status();
  uint32_t hint = 0;
  EXPECT_NE((*mem)->GpaToHost(0xff0, 16, &hint), nullptr);
  EXPECT_EQ((*mem)->GpaToHost(0xff0, 32, &hint), nullptr);
}

TEST(GuestMemoryTest, RejectsBadTables) {
  npa_vhost_memory_region one = {0x1000, 0x1000, 0x1000, 0};
  // fd count mismatch
  auto s = GuestMemory::Map({&one, 1}, Fds({0x1000, 0x1000}), "g1");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("guest 'g1'"), std::string::npos) << s.status();
  EXPECT_FALSE(GuestMemory::Map({&one, 1}, {}, "g").ok());
  // fd too small (would SIGBUS)
  s = GuestMemory::Map({&one, 1}, Fds({0x800}), "g");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("needs mmap_offset+size"), std::string::npos) << s.status();
  npa_vhost_memory_region off = {0x1000, 0x1000, 0x1000, 0x1000};
  EXPECT_FALSE(GuestMemory::Map({&off, 1}, Fds({0x1800}), "g").ok());
  // zero size, overflow
  npa_vhost_memory_region zero = {0x1000, 0, 0x1000, 0};
  EXPECT_FALSE(GuestMemory::Map({&zero, 1}, Fds({0x1000}), "g").ok());
  npa_vhost_memory_region wrap = {~0ull - 0x10, 0x1000, 0x1000, 0};
  EXPECT_FALSE(GuestMemory::Map({&wrap, 1}, Fds({0x1000}), "g").ok());
  npa_vhost_memory_region wrapoff = {0x1000, 0x1000, 0x1000, ~0ull - 0x10};
  EXPECT_FALSE(GuestMemory::Map({&wrapoff, 1}, Fds({0x1000}), "g").ok());
  // overlapping gpa / uva
  npa_vhost_memory_region ov[2] = {{0x0, 0x2000, 0x10000, 0}, {0x1000, 0x1000, 0x20000, 0}};
  s = GuestMemory::Map({ov, 2}, Fds({0x2000, 0x1000}), "g");
  EXPECT_NE(s.status().message().find("overlaps"), std::string::npos) << s.status();
  npa_vhost_memory_region ovu[2] = {{0x0, 0x1000, 0x10000, 0}, {0x8000, 0x1000, 0x10800, 0}};
  EXPECT_FALSE(GuestMemory::Map({ovu, 2}, Fds({0x1000, 0x1000}), "g").ok());
  // too many regions
  npa_vhost_memory_region many[9];
  std::vector<UniqueFd> fds;
  for (int i = 0; i < 9; ++i) {
    many[i] = {uint64_t(i) * 0x1000, 0x1000, uint64_t(i) * 0x1000, 0};
    fds.push_back(MemFd(0x1000));
  }
  EXPECT_FALSE(GuestMemory::Map({many, 9}, std::move(fds), "g").ok());
  // not a regular file
  std::vector<UniqueFd> ev;
  ev.emplace_back(eventfd(0, 0));
  s = GuestMemory::Map({&one, 1}, std::move(ev), "g");
  EXPECT_NE(s.status().message().find("not a memfd, tmpfs or hugetlbfs file"), std::string::npos)
      << s.status();
}

TEST(GuestMemoryTest, UnalignedMmapOffsetWorks) {
  UniqueFd fd = MemFd(0x3000);
  uint8_t* direct = static_cast<uint8_t*>(mmap(nullptr, 0x3000, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0));
  direct[0x1234] = 0x5a;
  npa_vhost_memory_region r = {0x0, 0x1000, 0x0, 0x1234};
  std::vector<UniqueFd> fds;
  fds.push_back(std::move(fd));
  auto mem = GuestMemory::Map({&r, 1}, std::move(fds), "g");
  ASSERT_TRUE(mem.ok()) << mem.status();
  uint32_t hint = 0;
  EXPECT_EQ(*(*mem)->GpaToHost(0, 1, &hint), 0x5a);
  munmap(direct, 0x3000);
}

TEST(GuestMemoryTest, ShrinkSealCanBeRequired) {
  npa_vhost_memory_region r = {0x0, 0x1000, 0x0, 0};
  EXPECT_FALSE(GuestMemory::Map({&r, 1}, Fds({0x1000}), "g", true).ok());
  UniqueFd fd(memfd_create("sealed", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  ASSERT_EQ(ftruncate(fd.get(), 0x1000), 0);
  ASSERT_EQ(fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK), 0);
  std::vector<UniqueFd> fds;
  fds.push_back(std::move(fd));
  EXPECT_TRUE(GuestMemory::Map({&r, 1}, std::move(fds), "g", true).ok());
}

// A regular file on the disk's file system (ext4 here, FUSE elsewhere) is
// refused before anything touches it beyond fcntl(F_GET_SEALS); a tmpfs file
// and a memfd are accepted.
TEST(GuestMemoryTrustTest, OnlyMemfdTmpfsAndHugetlbfsFilesAreMapped) {
  npa_vhost_memory_region r = {0x0, 0x1000, 0x0, 0};
  const std::string disk = "/var/tmp/npa-gm-test-" + std::to_string(getpid());
  UniqueFd f(open(disk.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  ASSERT_TRUE(f.valid()) << disk;
  unlink(disk.c_str());
  ASSERT_EQ(ftruncate(f.get(), 0x1000), 0);
  std::vector<UniqueFd> v;
  v.push_back(std::move(f));
  auto s = GuestMemory::Map({&r, 1}, std::move(v), "g9");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("guest 'g9' memory table: region 0 fd is not a memfd"),
            std::string::npos)
      << s.status();
  const std::string shm = "/dev/shm/npa-gm-test-" + std::to_string(getpid());
  UniqueFd t(open(shm.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  ASSERT_TRUE(t.valid()) << shm;
  unlink(shm.c_str());
  ASSERT_EQ(ftruncate(t.get(), 0x1000), 0);
  v.clear();
  v.push_back(std::move(t));
  EXPECT_TRUE(GuestMemory::Map({&r, 1}, std::move(v), "g9").ok());
  EXPECT_TRUE(GuestMemory::Map({&r, 1}, Fds({0x1000}), "g9").ok());
}

TEST(GuestMemoryTrustTest, TablesOverTheCapAreRefusedWithTheFigures) {
  npa_vhost_memory_region r[2] = {{0x0, 0x2000, 0x0, 0}, {0x10000, 0x2000, 0x10000, 0}};
  auto s = GuestMemory::Map({r, 2}, Fds({0x2000, 0x2000}), "g8", false, 0x3fff);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(s.status().message().find("2 regions total 16384 bytes, over this guest's cap of 16383"),
            std::string::npos)
      << s.status();
  EXPECT_TRUE(GuestMemory::Map({r, 2}, Fds({0x2000, 0x2000}), "g8", false, 0x4000).ok());
}

}  // namespace
}  // namespace npa::agent
