// Small text helpers shared by the modules. No locale: ASCII only, as
// Apigee's names and e-mail addresses compare.
#pragma once

#include <string>

namespace keyrot {

inline std::string ascii_lower(std::string s) {
    for (char& c : s)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return s;
}

}  // namespace keyrot
