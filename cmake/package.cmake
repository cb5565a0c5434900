# Installed documentation and the Debian package. `cpack -G DEB` in the build directory gives
# trustme-runtime_<version>_amd64.deb (README, "Debian package"): the binaries in /usr/bin, the plugins and
# the runtime's dynamically linked twin in /usr/lib/trustme (../lib/trustme from the binaries, where they
# look), the man pages, and in /usr/share/doc/trustme-runtime the README, docs/, the copyright file, a
# changelog and examples/: a trust policy and the engine snippets of docs/dropin.md.
# tests/package/deb.sh builds it, installs it into a scratch root and runs the demo from there.

set(TRUSTME_PACKAGE_MAINTAINER "trustme-runtime developers <dev@trustme-runtime.invalid>"
    CACHE STRING "Maintainer field of the Debian package")

file(GLOB trustme_docs ${CMAKE_SOURCE_DIR}/docs/*.md)
install(FILES ${CMAKE_SOURCE_DIR}/README.md ${trustme_docs} DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES ${CMAKE_SOURCE_DIR}/docs/examples/policy.json DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
# The snippets name the runtime by its installed path, so they are written at install time, when the prefix
# is known (cpack installs with DESTDIR and the prefix /usr: CPACK_SET_DESTDIR below).
install(CODE "
  execute_process(COMMAND python3 ${CMAKE_SOURCE_DIR}/cmake/dropin-snippets.py ${CMAKE_SOURCE_DIR}/docs/dropin.md
                          \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_DOCDIR}/examples\"
                          \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}\"
                  COMMAND_ERROR_IS_FATAL ANY)")

# Debian's copyright file and changelog (Debian policy 12.5 and 12.7; lintian wants both, the changelog
# compressed with gzip -9n).
install(FILES ${CMAKE_SOURCE_DIR}/cmake/debian-copyright DESTINATION ${CMAKE_INSTALL_DOCDIR} RENAME copyright)
install(FILES ${CMAKE_SOURCE_DIR}/cmake/lintian-overrides DESTINATION ${CMAKE_INSTALL_DATADIR}/lintian/overrides
        RENAME trustme-runtime)
string(TIMESTAMP TRUSTME_PACKAGE_DATE "%a, %d %b %Y %H:%M:%S +0000" UTC)  # honours SOURCE_DATE_EPOCH
configure_file(${CMAKE_SOURCE_DIR}/cmake/debian-changelog.in ${CMAKE_BINARY_DIR}/package/changelog @ONLY)
add_custom_command(OUTPUT ${CMAKE_BINARY_DIR}/package/changelog.gz
                   COMMAND sh -c "gzip -9nc changelog > changelog.gz" WORKING_DIRECTORY ${CMAKE_BINARY_DIR}/package
                   DEPENDS ${CMAKE_BINARY_DIR}/package/changelog VERBATIM)
add_custom_target(trustme_changelog ALL DEPENDS ${CMAKE_BINARY_DIR}/package/changelog.gz)
install(FILES ${CMAKE_BINARY_DIR}/package/changelog.gz DESTINATION ${CMAKE_INSTALL_DOCDIR})

set(CPACK_PACKAGE_NAME trustme-runtime)
set(CPACK_PACKAGE_VENDOR "The trustme-runtime authors")
set(CPACK_PACKAGE_CONTACT "${TRUSTME_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "OCI container runtime with signed bundles, TPM-sealed volumes and attestation")
set(CPACK_PACKAGE_DESCRIPTION "A low-level OCI runtime with runc's command line: containerd's runc
shim, Docker, podman and CRI-O drive it as they drive runc. Before a
container is created, its bundle is verified against a trust policy (a
CMS signature over a manifest of config.json and every rootfs entry);
LUKS2 volumes are unlocked with keys sealed in the TPM 2.0, and container
starts are measured into a TPM PCR for remote attestation. With
trustme-sign (PKI and bundle signing) and trustme-attest (measurement
hook, quotes and their verification).")
# Installed with DESTDIR into the staging tree and the prefix /usr, whatever CMAKE_INSTALL_PREFIX is.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_GENERATOR DEB)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # <name>_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)  # dpkg-shlibdeps over the dynamically linked binaries and plugins
# newuidmap/newgidmap for rootless containers that map more than the caller's own ids.
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS uidmap)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_COMPRESSION_TYPE xz)
include(CPack)
