# vcpkg overlay port: builds the eloqstore checkout it lives in
# (vcpkg install eloqstore --overlay-ports=<checkout>/ports). A registry port would fetch a
# release with vcpkg_from_github instead; the rest stays as it is.
get_filename_component(SOURCE_PATH "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)

vcpkg_find_acquire_program(PKGCONFIG)
vcpkg_cmake_configure(
  SOURCE_PATH "${SOURCE_PATH}"
  OPTIONS
    -DELOQSTORE_BUILD_TESTS=OFF
    -DELOQSTORE_BUILD_BENCH=OFF
    -DELOQSTORE_BUILD_EXAMPLES=OFF
    -DELOQSTORE_INSTALL=ON
    "-DPKG_CONFIG_EXECUTABLE=${PKGCONFIG}"
)
vcpkg_cmake_install()
vcpkg_cmake_config_fixup(CONFIG_PATH lib/cmake/eloqstore)
vcpkg_fixup_pkgconfig()

file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/debug/include" "${CURRENT_PACKAGES_DIR}/debug/share")
file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
