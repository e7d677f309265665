// A fresh directory under the system's temporary directory, removed with
// everything in it when the test is done.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

namespace keyrot::testing {

struct temp_dir {
    std::filesystem::path path;

    explicit temp_dir(const std::string& prefix = "keyrot_test") {
        std::string t = (std::filesystem::temp_directory_path() / (prefix + "_XXXXXX")).string();
        if (::mkdtemp(t.data()) == nullptr) throw std::runtime_error("mkdtemp " + t);
        path = t;
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
};

}  // namespace keyrot::testing
