# Man pages: every man/<name>.<section>.scd is built with scdoc into
# ${CMAKE_BINARY_DIR}/man/<name>.<section> (runbook-run.1, runbook.yaml.5, ...),
# which the package installs.  scdoc is optional for a developer build: without
# it the pages are skipped with a message (scripts/install-deps.sh installs it,
# and the package stage needs it).
find_program(SCDOC scdoc)
file(GLOB RUNBOOK_MAN_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/man/*.scd)
if(NOT SCDOC)
  message(STATUS "scdoc not found: man pages are not built (bash scripts/install-deps.sh)")
  return()
endif()

set(RUNBOOK_MAN_DIR ${CMAKE_BINARY_DIR}/man)
set(RUNBOOK_MAN_PAGES "")
foreach(src ${RUNBOOK_MAN_SOURCES})
  get_filename_component(page ${src} NAME)
  string(REGEX REPLACE "\\.scd$" "" page ${page})
  set(out ${RUNBOOK_MAN_DIR}/${page})
  # scdoc reads stdin only; a shell redirect keeps a failed build from leaving
  # an empty page behind (the output is removed when scdoc fails)
  add_custom_command(OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${RUNBOOK_MAN_DIR}
    COMMAND sh -c "'${SCDOC}' < '${src}' > '${out}.tmp' && mv '${out}.tmp' '${out}' || { rm -f '${out}.tmp'; exit 1; }"
    DEPENDS ${src}
    COMMENT "scdoc ${page}"
    VERBATIM)
  list(APPEND RUNBOOK_MAN_PAGES ${out})
endforeach()
add_custom_target(man ALL DEPENDS ${RUNBOOK_MAN_PAGES})
