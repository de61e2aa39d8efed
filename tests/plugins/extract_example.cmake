# Cuts the example plug-in out of include/npa/plugin.h (between its two
# marker lines), drops the comment's " * " prefixes and writes it as a C file
# whose #line points back into the header, so a compile error names the
# header line a reader edited. Run at build time:
#   cmake -DHEADER=include/npa/plugin.h -DOUT=example_plugin.c -P extract_example.cmake
# Fails when a marker is missing: the header would have lost its example.
file(READ "${HEADER}" text)
set(begin_marker "---8<--- example plug-in: begin ---8<---")
set(end_marker "---8<--- example plug-in: end ---8<---")
string(FIND "${text}" "${begin_marker}" b)
string(FIND "${text}" "${end_marker}" e)
if(b EQUAL -1 OR e EQUAL -1 OR e LESS b)
  message(FATAL_ERROR "${HEADER}: the example plug-in's marker lines are missing or out of "
                      "order ('${begin_marker}' ... '${end_marker}')")
endif()
string(LENGTH "${begin_marker}" blen)
math(EXPR start "${b} + ${blen}")
math(EXPR len "${e} - ${start}")
string(SUBSTRING "${text}" ${start} ${len} block)
# The line after the begin marker, 1-based.
string(SUBSTRING "${text}" 0 ${b} before)
string(REGEX MATCHALL "\n" newlines "${before}")
list(LENGTH newlines marker_index)
math(EXPR first_line "${marker_index} + 2")
# block is "\n * line\n * line ... \n * " : strip each " * " (or " *").
string(REGEX REPLACE "\n \\* ?" "\n" block "${block}")
file(WRITE "${OUT}.tmp"
     "/* Generated from ${HEADER} by tests/plugins/extract_example.cmake: edit the header. */\n"
     "#line ${first_line} \"${HEADER}\"${block}")
# Rewrite only on change, so an edit elsewhere in the header rebuilds nothing.
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")
