# Parses the vcpkg portfile with every vcpkg function it calls stubbed out: a syntax error or
# a call of a function the stubs do not know fails (cmake -P tests/package/check-recipes.cmake).
foreach(fn vcpkg_find_acquire_program vcpkg_cmake_configure vcpkg_cmake_install
           vcpkg_cmake_config_fixup vcpkg_fixup_pkgconfig vcpkg_install_copyright)
  cmake_language(EVAL CODE "function(${fn})\nendfunction()")
endforeach()
set(CURRENT_PACKAGES_DIR "${CMAKE_CURRENT_LIST_DIR}/recipe-check-packages")
set(PORT eloqstore)
set(portfile "${CMAKE_CURRENT_LIST_DIR}/../../ports/eloqstore/portfile.cmake")
# file(INSTALL) and file(REMOVE_RECURSE) would act: parse into a function and call nothing
# but the stubs by overriding file() for the check.
macro(file)
endmacro()
include("${portfile}")
message(STATUS "portfile parses: ${portfile}")
