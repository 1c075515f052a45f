# Conan 2 recipe. `conan create . -s compiler.cppstd=20` builds the compiled parts, packages
# the headers, and runs test_package/ (the same consumer the project's package tests build
# against an install prefix). Dependencies as ConanCenter names them; the project finds
# some through pkg-config, so the recipe asks for pkgconf as a tool.
import os

from conan import ConanFile
from conan.errors import ConanInvalidConfiguration
from conan.tools.build import check_min_cppstd
from conan.tools.cmake import CMake, CMakeDeps, CMakeToolchain, cmake_layout
from conan.tools.files import copy, rmdir
from conan.tools.gnu import PkgConfigDeps


class EloqStoreConan(ConanFile):
    name = "eloqstore"
    version = "0.1.0"
    license = "Apache-2.0"
    description = ("EloqStore storage engine: a sharded copy-on-write B+tree on io_uring and "
                   "stackful coroutines, with an S3-compatible object-store tier")
    topics = ("storage-engine", "key-value", "b-tree", "io_uring", "header-only")
    # Static libraries (options, s3, default_store); the C API's shared library comes along.
    package_type = "static-library"
    settings = "os", "arch", "compiler", "build_type"
    options = {"fPIC": [True, False]}
    default_options = {"fPIC": True, "boost/*:without_context": False}
    exports_sources = ("CMakeLists.txt", "LICENSE", "cmake/*", "include/*", "detail/*")

    def validate(self):
        if self.settings.os != "Linux":
            raise ConanInvalidConfiguration("eloqstore needs Linux (io_uring)")
        check_min_cppstd(self, 20)

    def requirements(self):
        self.requires("liburing/2.5", transitive_headers=True, transitive_libs=True)
        self.requires("xxhash/0.8.2", transitive_headers=True)
        self.requires("zstd/1.5.5", transitive_headers=True)
        self.requires("boost/1.83.0", transitive_headers=True, transitive_libs=True)
        self.requires("range-v3/0.12.0", transitive_headers=True)
        self.requires("libcurl/8.6.0")
        self.requires("inih/58")

    def build_requirements(self):
        self.tool_requires("pkgconf/2.1.0")

    def layout(self):
        cmake_layout(self)

    def generate(self):
        # The project finds liburing, xxhash, zstd and inih through pkg-config, Boost,
        # range-v3 and curl through CMake packages.
        CMakeDeps(self).generate()
        PkgConfigDeps(self).generate()
        tc = CMakeToolchain(self)
        tc.cache_variables["ELOQSTORE_BUILD_TESTS"] = False
        tc.cache_variables["ELOQSTORE_BUILD_BENCH"] = False
        tc.cache_variables["ELOQSTORE_BUILD_EXAMPLES"] = False
        tc.cache_variables["ELOQSTORE_INSTALL"] = True
        tc.generate()

    def build(self):
        cmake = CMake(self)
        cmake.configure()
        cmake.build()

    def package(self):
        copy(self, "LICENSE", self.source_folder, os.path.join(self.package_folder, "licenses"))
        cmake = CMake(self)
        cmake.install()
        # Conan generates the consumers' package files itself.
        rmdir(self, os.path.join(self.package_folder, "lib", "cmake"))
        rmdir(self, os.path.join(self.package_folder, "lib", "pkgconfig"))

    def package_info(self):
        self.cpp_info.set_property("cmake_file_name", "eloqstore")
        # The root target aggregates every component: its name must not be a component's.
        self.cpp_info.set_property("cmake_target_name", "eloqstore::all")
        self.cpp_info.set_property("pkg_config_name", "eloqstore-all")

        headers = self.cpp_info.components["headers"]
        headers.set_property("cmake_target_name", "eloqstore::eloqstore")
        headers.set_property("pkg_config_name", "eloqstore")
        headers.libdirs = []
        headers.requires = ["liburing::liburing", "xxhash::xxhash", "zstd::zstd",
                            "boost::context", "range-v3::range-v3"]

        options_file = self.cpp_info.components["options_file"]
        options_file.set_property("cmake_target_name", "eloqstore::options_file")
        options_file.set_property("pkg_config_name", "eloqstore-options")
        options_file.libs = ["eloqstore_options"]
        options_file.requires = ["headers", "inih::inih"]

        s3 = self.cpp_info.components["s3"]
        s3.set_property("cmake_target_name", "eloqstore::s3")
        s3.set_property("pkg_config_name", "eloqstore-s3")
        s3.libs = ["eloqstore_s3"]
        s3.requires = ["headers", "libcurl::libcurl"]
        s3.system_libs = ["pthread"]

        default_store = self.cpp_info.components["default_store"]
        default_store.set_property("cmake_target_name", "eloqstore::default_store")
        default_store.set_property("pkg_config_name", "eloqstore-default-store")
        default_store.libs = ["eloqstore_default_store"]
        default_store.requires = ["headers"]

        c_api = self.cpp_info.components["c"]
        c_api.set_property("cmake_target_name", "eloqstore::c")
        c_api.set_property("pkg_config_name", "eloqstore-c")
        c_api.libs = ["eloqstore_c"]
        c_api.requires = ["headers", "inih::inih"]
