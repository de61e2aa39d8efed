// shell/vf/plugin_test_util.h — where the test plug-ins are
// (tests/plugins, built into NPA_TEST_PLUGIN_ROOT) and whether one is still
// mapped; shared by plugin_loader_test.cc and plugin_device_test.cc.
#ifndef NPA_SHELL_VF_PLUGIN_TEST_UTIL_H_
#define NPA_SHELL_VF_PLUGIN_TEST_UTIL_H_

#include <dlfcn.h>

#include <string>

namespace npa::shell {

inline std::string Dir(const std::string& group) {
  return std::string(NPA_TEST_PLUGIN_ROOT) + "/" + group;
}
inline std::string Plugin(const std::string& group, const std::string& name) {
  return Dir(group) + "/lib" + name + ".so";
}

// True when the object is still mapped in this process (RTLD_NOLOAD does not
// load it, it only looks).
inline bool StillLoaded(const std::string& path) {
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (h == nullptr) return false;
  dlclose(h);
  return true;
}

}  // namespace npa::shell

#endif  // NPA_SHELL_VF_PLUGIN_TEST_UTIL_H_
