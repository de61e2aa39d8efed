# Files whose text names install paths (the pkg-config files, the systemd
# unit) are generated when they are installed, not when the tree is
# configured: `cmake --install --prefix P` and CPack's Debian package
# (CPACK_PACKAGING_INSTALL_PREFIX /usr, with /etc) then get paths that match
# where the files really land, from one build (docs/packaging.md "Paths").
#
#   npa_install_generated(cmake/npa-shell.pc.in npa-shell.pc "@NPA_I_LIBDIR@/pkgconfig")
#
# At install time the template is configured (@ONLY) with, from the prefix
# being installed to:
#   CMAKE_INSTALL_PREFIX, CMAKE_INSTALL_FULL_BINDIR, _LIBDIR, _INCLUDEDIR,
#   _SYSCONFDIR (/etc for the prefixes / and /usr, else PREFIX/etc, as
#   GNUInstallDirs does), NPA_CONFIG_FILE (SYSCONFDIR/npa/agent.conf),
#   NPA_UNIT_DIR (PREFIX/lib/systemd/system, where systemd looks for /usr
#   and /usr/local), NPA_PLUGIN_INSTALL_DIR (PREFIX/lib/npa/plugins when it
#   is relative, as by default, else unchanged) and PROJECT_VERSION.
# DESTINATION may use @NPA_I_LIBDIR@, @NPA_I_SYSCONFDIR@, @NPA_I_UNITDIR@.
function(npa_install_generated template name destination)
  set(src ${CMAKE_SOURCE_DIR}/${template})
  set(out ${CMAKE_BINARY_DIR}/install-gen)
  string(REPLACE "@NPA_I_LIBDIR@" "\${CMAKE_INSTALL_FULL_LIBDIR}" dest "${destination}")
  string(REPLACE "@NPA_I_SYSCONFDIR@" "\${CMAKE_INSTALL_FULL_SYSCONFDIR}" dest "${dest}")
  string(REPLACE "@NPA_I_UNITDIR@" "\${NPA_UNIT_DIR}" dest "${dest}")
  install(CODE "
block(PROPAGATE CMAKE_INSTALL_MANIFEST_FILES)
  set(p \"\${CMAKE_INSTALL_PREFIX}\")
  set(CMAKE_INSTALL_FULL_BINDIR \"\${p}/${CMAKE_INSTALL_BINDIR}\")
  set(CMAKE_INSTALL_FULL_LIBDIR \"\${p}/${CMAKE_INSTALL_LIBDIR}\")
  set(CMAKE_INSTALL_FULL_INCLUDEDIR \"\${p}/${CMAKE_INSTALL_INCLUDEDIR}\")
  if(p STREQUAL \"/\" OR p STREQUAL \"/usr\")
    set(CMAKE_INSTALL_FULL_SYSCONFDIR /etc)
  else()
    set(CMAKE_INSTALL_FULL_SYSCONFDIR \"\${p}/etc\")
  endif()
  set(NPA_CONFIG_FILE \"\${CMAKE_INSTALL_FULL_SYSCONFDIR}/npa/agent.conf\")
  set(NPA_UNIT_DIR \"\${p}/lib/systemd/system\")
  set(NPA_PLUGIN_INSTALL_DIR \"${NPA_PLUGIN_INSTALL_DIR}\")
  if(NOT IS_ABSOLUTE \"\${NPA_PLUGIN_INSTALL_DIR}\")
    set(NPA_PLUGIN_INSTALL_DIR \"\${p}/\${NPA_PLUGIN_INSTALL_DIR}\")
  endif()
  set(PROJECT_VERSION \"${PROJECT_VERSION}\")
  # One directory per destination: two installs at once (install_sdk and
  # package_deb under ctest -j) must not write each other's file.
  string(MD5 h \"\$ENV{DESTDIR}|\${p}\")
  configure_file(\"${src}\" \"${out}/\${h}/${name}\" @ONLY)
  file(INSTALL \"${out}/\${h}/${name}\" DESTINATION \"${dest}\")
endblock()
")
endfunction()
