# Packaging: what `cmake --install` puts where, `runbook version`, and the
# Debian package (`cmake --build build --target package` -> build/runbook_*.deb).
#
# The binary finds its library under ${CMAKE_INSTALL_PREFIX}/share/runbook
# (compiled in), so the package installs under the same prefix: configure
# with -DCMAKE_INSTALL_PREFIX=/usr for a package that follows Debian's layout
# (.ci/run and the Dockerfile do).

# ---- runbook version: the git describe of the build -------------------------
set(RUNBOOK_GIT_DESCRIBE "" CACHE STRING
  "Version to report instead of `git describe` (builds without .git: tarballs, the Dockerfile)")
set(RUNBOOK_VERSION_C ${CMAKE_BINARY_DIR}/generated/rb_build_version.c)
set(RUNBOOK_VERSION_CPACK ${CMAKE_BINARY_DIR}/generated/rb_build_version.cmake)
add_custom_target(runbook_version ALL
  COMMAND ${CMAKE_COMMAND} -DSRC=${CMAKE_SOURCE_DIR} -DOUT_C=${RUNBOOK_VERSION_C}
          -DOUT_CMAKE=${RUNBOOK_VERSION_CPACK} -DPROJECT_VERSION=${PROJECT_VERSION}
          "-DGIT_DESCRIBE=${RUNBOOK_GIT_DESCRIBE}" -P ${CMAKE_SOURCE_DIR}/cmake/version.cmake
  BYPRODUCTS ${RUNBOOK_VERSION_C} ${RUNBOOK_VERSION_CPACK}
  COMMENT "Reading the git describe of the build"
  VERBATIM)
add_dependencies(runbook runbook_version)
# one generated file of its own: a new commit recompiles it and relinks, nothing more
target_sources(runbook PRIVATE ${RUNBOOK_VERSION_C})

# ---- install rules ------------------------------------------------------------
# (the binary, stdlib/ and runbooks/ are installed next to their targets in
# CMakeLists.txt)
set(RUNBOOK_DOC_DIR share/doc/runbook)
install(DIRECTORY examples/ DESTINATION ${RUNBOOK_DOC_DIR}/examples)
install(FILES README.md DESTINATION ${RUNBOOK_DOC_DIR})
install(FILES stdlib/README.md DESTINATION ${RUNBOOK_DOC_DIR} RENAME stdlib.md)
install(DIRECTORY docs/ DESTINATION ${RUNBOOK_DOC_DIR} FILES_MATCHING PATTERN "*.md")

# Man pages are built by cmake/man.cmake into ${CMAKE_BINARY_DIR}/man;
# OPTIONAL so that a tree without them still installs.  Compressed as
# Debian policy wants (man reads .gz).
install(DIRECTORY ${CMAKE_BINARY_DIR}/man/ DESTINATION share/man/man1 OPTIONAL
  FILES_MATCHING PATTERN "*.1")
install(DIRECTORY ${CMAKE_BINARY_DIR}/man/ DESTINATION share/man/man5 OPTIONAL
  FILES_MATCHING PATTERN "*.5")
install(CODE [[
  file(GLOB _rb_man "$ENV{DESTDIR}${CMAKE_INSTALL_PREFIX}/share/man/man[15]/*.[15]")
  foreach(_page IN LISTS _rb_man)
    execute_process(COMMAND gzip -9nf "${_page}" RESULT_VARIABLE _rc)
    if(NOT _rc EQUAL 0)
      message(FATAL_ERROR "gzip ${_page} failed")
    endif()
  endforeach()
]])

# Shell completions, each where its shell looks for vendor completions.
install(FILES completions/runbook.bash OPTIONAL
  DESTINATION share/bash-completion/completions RENAME runbook)
install(FILES completions/_runbook OPTIONAL DESTINATION share/zsh/vendor-completions)
install(FILES completions/runbook.fish OPTIONAL DESTINATION share/fish/vendor_completions.d)

# ---- the Debian package ---------------------------------------------------------
set(RUNBOOK_MAINTAINER "runbook maintainers <maintainers@users.noreply.example>" CACHE STRING
  "Maintainer field of the Debian package")
if(NOT CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  message(STATUS "runbook: the Debian package installs under ${CMAKE_INSTALL_PREFIX}; "
    "configure with -DCMAKE_INSTALL_PREFIX=/usr for Debian's layout")
endif()
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME runbook)
set(CPACK_PACKAGE_VENDOR runbook)
set(CPACK_PACKAGE_CONTACT "${RUNBOOK_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "executable runbooks in Lua: live, dry-run, confirmed, audited")
# the long description under that synopsis (CPack indents it)
set(CPACK_PACKAGE_DESCRIPTION
  "runbook runs operational runbooks (Lua files of named steps) live, as a
dry-run where changes are only shown, or step by step with confirmation,
tests them against YAML scenarios, and records every action in a
tamper-evident SQLite audit log.")
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)   # runbook_<version>_<arch>.deb
# Depends: what the binary links (dpkg-shlibdeps reads its DT_NEEDED: Lua,
# libyaml, SQLite, nettle, libc).  libcurl (http), libpq (db on PostgreSQL)
# and libedit (REPL line editing) are dlopen()ed on first use (src/*/*_lazy.c)
# and say which package to install when missing: Recommends.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "libcurl4, libpq5, libedit2")
# luacheck deepens `runbook check`; ssh for the ssh primitive
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "lua-check, openssh-client, bash-completion")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_STRIP_FILES ON)
# The version is read when cpack runs, from what the last build wrote.
set(CPACK_PROJECT_CONFIG_FILE ${CMAKE_BINARY_DIR}/generated/cpack_project_config.cmake)
file(WRITE ${CPACK_PROJECT_CONFIG_FILE} "
if(EXISTS \"${RUNBOOK_VERSION_CPACK}\")
  include(\"${RUNBOOK_VERSION_CPACK}\")
  set(CPACK_PACKAGE_VERSION \"\${RUNBOOK_DEB_VERSION}\")
  set(CPACK_DEBIAN_PACKAGE_VERSION \"\${RUNBOOK_DEB_VERSION}\")
endif()
")
include(CPack)

# ---- the container image's rules ----------------------------------------------
# CI builds and runs the image on an engine of its own (scripts/image-test.sh,
# stage 6 of .ci/run); every test run lints the Dockerfile and its context
# against the rules it follows (scripts/lint-dockerfile.sh).
add_test(NAME lint_dockerfile COMMAND bash ${CMAKE_SOURCE_DIR}/scripts/lint-dockerfile.sh
  ${CMAKE_SOURCE_DIR}/Dockerfile)
