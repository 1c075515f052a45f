# Installs eloqstore as a CMake package (find_package(eloqstore CONFIG)) and as pkg-config
# modules: the headers (eloqstore::eloqstore, eloqstore.pc) and the compiled parts
# (eloqstore::options_file / eloqstore-options.pc, eloqstore::s3 / eloqstore-s3.pc,
# eloqstore::default_store / eloqstore-default-store.pc, the C API eloqstore::c /
# eloqstore-c.pc).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(ELOQSTORE_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/eloqstore)
set(ELOQSTORE_INSTALLED_TARGETS eloqstore eloqstore_options eloqstore_s3 eloqstore_default_store
                                 eloqstore_c)

install(DIRECTORY include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS ${ELOQSTORE_INSTALLED_TARGETS} EXPORT eloqstore-targets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT eloqstore-targets NAMESPACE eloqstore:: DESTINATION ${ELOQSTORE_CMAKE_DIR})

configure_package_config_file(cmake/eloqstoreConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/eloqstoreConfig.cmake
                              INSTALL_DESTINATION ${ELOQSTORE_CMAKE_DIR})
# 0.x releases break compatibility at minor versions; from 1.0 on, at major versions.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(ELOQSTORE_COMPATIBILITY SameMinorVersion)
else()
  set(ELOQSTORE_COMPATIBILITY SameMajorVersion)
endif()
write_basic_package_version_file(${PROJECT_BINARY_DIR}/eloqstoreConfigVersion.cmake
                                 COMPATIBILITY ${ELOQSTORE_COMPATIBILITY})
install(FILES ${PROJECT_BINARY_DIR}/eloqstoreConfig.cmake
              ${PROJECT_BINARY_DIR}/eloqstoreConfigVersion.cmake
        DESTINATION ${ELOQSTORE_CMAKE_DIR})

if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}" OR IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  message(FATAL_ERROR "eloqstore's pkg-config files need CMAKE_INSTALL_LIBDIR and "
                      "CMAKE_INSTALL_INCLUDEDIR relative to the prefix")
endif()
file(RELATIVE_PATH ELOQSTORE_PC_TO_PREFIX /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
foreach(pc eloqstore eloqstore-options eloqstore-s3 eloqstore-default-store eloqstore-c)
  configure_file(cmake/${pc}.pc.in ${PROJECT_BINARY_DIR}/${pc}.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/${pc}.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endforeach()

install(FILES LICENSE DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/eloqstore)
