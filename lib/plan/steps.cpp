#include "plan/steps.hpp"

#include <algorithm>
#include <tuple>

namespace keyrot::plan {
namespace {

const product_grant* find_product(const credential& c, const std::string& product) {
    for (const auto& p : c.products)
        if (p.name == product) return &p;
    return nullptr;
}

// The product's status on `c`; unknown when `c` lacks it.
approval status_of(const credential& c, const std::string& product) {
    const product_grant* p = find_product(c, product);
    return p == nullptr ? approval::unknown : p->status;
}

std::vector<attribute> sorted(std::vector<attribute> v) {
    std::sort(v.begin(), v.end(), [](const attribute& a, const attribute& b) {
        return std::tie(a.name, a.value) < std::tie(b.name, b.value);
    });
    return v;
}

std::vector<std::string> sorted(std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
}

bool keeps_marker(const credential& c) {
    return find_attribute(c.attributes, k_marker_attribute) != nullptr;
}

bool marked_pending(const credential& c, const std::string& replaces) {
    const std::string* m = find_attribute(c.attributes, k_marker_attribute);
    return m != nullptr && *m == k_pending_prefix + replaces;
}

void set_status(credential& c, const std::string& product, approval status) {
    for (auto& p : c.products)
        if (p.name == product) p.status = status;
}

}  // namespace

const char* to_string(step_kind k) {
    switch (k) {
        case step_kind::add_products_final:
            return "add products with the final marker";
        case step_kind::add_products:
            return "add products";
        case step_kind::set_product_status:
            return "set a product's status";
        case step_kind::verify_statuses:
            return "read back product statuses";
        case step_kind::set_scopes:
            return "set scopes";
        case step_kind::final_marker:
            return "write final marker";
        case step_kind::create_pending:
            return "create key with the pending marker";
        case step_kind::create_bare:
            return "create key";
        case step_kind::generate:
            return "generate key";
        case step_kind::mark_pending:
            return "write pending marker";
        case step_kind::revoke:
            return "revoke key";
        case step_kind::remove:
            return "delete key";
    }
    return "?";
}

const char* to_string(audited a) {
    switch (a) {
        case audited::none:
            return "none";
        case audited::created:
            return "created";
        case audited::completed:
            return "completed";
        case audited::revoked:
            return "revoked";
        case audited::deleted:
            return "deleted";
    }
    return "?";
}

std::vector<attribute> with_marker(std::vector<attribute> attrs, const std::string& value) {
    for (auto& a : attrs) {
        if (a.name == k_marker_attribute) {
            a.value = value;
            return attrs;
        }
    }
    attrs.push_back({k_marker_attribute, value});
    return attrs;
}

std::vector<step> making_steps(const action& act, policy::rotation_method method, bool edge) {
    step first;
    first.replaces = act.key;
    if (method == policy::rotation_method::generate) {
        first.kind = step_kind::generate;
        for (const auto& p : act.spec.products) first.products.push_back(p.name);
        first.scopes = act.spec.scopes;
        first.journal_first = true;  // the new key is known only from the app's answer
    } else if (edge) {
        first.kind = step_kind::create_bare;
        first.journal_first = true;  // it takes no attributes: the marker comes next
    } else {
        // No scopes: a key without products may refuse them; completion sets them.
        first.kind = step_kind::create_pending;
        first.attributes = with_marker(act.spec.attributes, k_pending_prefix + act.key);
        first.records = audited::created;  // made and marked in one call
        return {first};
    }
    step mark;
    mark.kind = step_kind::mark_pending;
    mark.replaces = act.key;
    mark.records = audited::created;
    mark.ends_journal = true;
    return {first, mark};
}

step marking(const credential& s, const std::string& replaces) {
    step st;
    st.kind = step_kind::mark_pending;
    st.replaces = replaces;
    st.attributes = with_marker(s.attributes, k_pending_prefix + replaces);
    st.records = audited::created;
    st.ends_journal = true;
    return st;
}

step retire_step(const action& act) {
    step st;
    if (act.kind == action_kind::delete_key) {
        st.kind = step_kind::remove;
        st.records = audited::deleted;
    } else {
        st.kind = step_kind::revoke;
        st.records = audited::revoked;
        // An old key (a duplicate successor `replaces` another: nobody was given it).
        st.delivery_gate = act.replaces.empty();
    }
    return st;
}

std::optional<std::string> check_revocable(const credential& s, const std::string& successor_fp,
                                           const credential& old, sys_ms now) {
    if (!key_valid(s, now)) return "successor " + successor_fp + " is not valid now; not revoked";
    if (!covers_approved(s, old))
        return "successor " + successor_fp +
               " no longer has every product the old key has approved; not revoked";
    return std::nullopt;
}

const char* to_string(status_change c) {
    switch (c) {
        case status_change::leave:
            return "leave";
        case status_change::approve:
            return "approve";
        case status_change::revoke:
            return "revoke";
    }
    return "?";
}

status_change mirror(approval want, approval actual) {
    if (want == approval::approved)
        return actual == approval::approved ? status_change::leave : status_change::approve;
    if (want == approval::revoked)
        return actual == approval::revoked ? status_change::leave : status_change::revoke;
    // pending (the API cannot set it) and anything unknown: never approved.
    return actual == approval::approved ? status_change::revoke : status_change::leave;
}

std::optional<step> next_completion_step(const credential& s, const successor_spec& spec,
                                         status_phase statuses) {
    const bool final_now = sorted(s.attributes) == sorted(spec.attributes);
    // 1. Products the successor lacks.
    std::vector<std::string> missing;
    for (const auto& p : spec.products)
        if (find_product(s, p.name) == nullptr) missing.push_back(p.name);
    if (!missing.empty()) {
        step st;
        st.products = std::move(missing);
        const bool all_approved =
            std::all_of(spec.products.begin(), spec.products.end(),
                        [](const product_grant& p) { return p.status == approval::approved; });
        if (!final_now && spec.scopes.empty() && s.scopes.empty() && all_approved) {
            st.kind = step_kind::add_products_final;
            st.attributes = spec.attributes;
            st.completes = true;
            st.records = audited::completed;
        } else {
            st.kind = step_kind::add_products;
            st.attributes = s.attributes;
        }
        return st;
    }
    // 2. Statuses, one product at a time, then one read back.
    for (const auto& p : spec.products) {
        if (statuses == status_phase::verified) break;
        const status_change m = mirror(p.status, status_of(s, p.name));
        if (m == status_change::leave) continue;
        step st;
        st.kind = step_kind::set_product_status;
        st.products = {p.name};
        st.approve = m == status_change::approve;
        return st;
    }
    if (statuses == status_phase::unverified) {
        step st;
        st.kind = step_kind::verify_statuses;
        return st;
    }
    // 3. Scopes.
    if (sorted(s.scopes) != sorted(spec.scopes)) {
        step st;
        st.kind = step_kind::set_scopes;
        st.scopes = spec.scopes;
        st.attributes = s.attributes;
        return st;
    }
    // 4. The final marker.
    if (!final_now) {
        step st;
        st.kind = step_kind::final_marker;
        st.attributes = spec.attributes;
        st.completes = true;
        st.records = audited::completed;
        return st;
    }
    return std::nullopt;
}

credential expected_after(credential s, const step& st, approval added_status) {
    switch (st.kind) {
        case step_kind::add_products_final:
        case step_kind::add_products:
            for (const auto& p : st.products)
                if (find_product(s, p) == nullptr) s.products.push_back({p, added_status});
            s.attributes = st.attributes;
            break;
        case step_kind::set_product_status:
            for (const auto& p : st.products)
                set_status(s, p, st.approve ? approval::approved : approval::revoked);
            break;
        case step_kind::verify_statuses:
            break;
        case step_kind::set_scopes:
            s.scopes = st.scopes;
            s.attributes = st.attributes;
            break;
        case step_kind::final_marker:
            s.attributes = st.attributes;
            break;
        case step_kind::create_pending:
            s.status = approval::approved;
            s.attributes = st.attributes;
            break;
        case step_kind::create_bare:
            s.status = approval::approved;
            break;
        case step_kind::generate:
            s.status = approval::approved;
            for (const auto& p : st.products)
                if (find_product(s, p) == nullptr) s.products.push_back({p, added_status});
            s.scopes = st.scopes;
            break;
        case step_kind::mark_pending:
            s.attributes = st.attributes;
            break;
        case step_kind::revoke:
            s.status = approval::revoked;
            break;
        case step_kind::remove:
            break;
    }
    return s;
}

namespace {

// Each product of `spec` on `s` as the old key has it: approved where it is
// approved, never approved where it is not (revoked, or pending where
// Apigee keeps a revoked product pending).
std::optional<std::string> statuses_wrong(const credential& s, const successor_spec& spec) {
    for (const auto& p : spec.products) {
        const approval actual = status_of(s, p.name);
        const bool good = p.status == approval::approved
                              ? actual == approval::approved
                              : actual == approval::revoked || actual == approval::pending;
        if (!good)
            return "product " + p.name + " reads back " + to_string(actual) + ", wanted " +
                   to_string(p.status);
    }
    return std::nullopt;
}

}  // namespace

std::optional<std::string> check_before_final(const credential& s, const successor_spec& spec) {
    if (auto wrong = statuses_wrong(s, spec)) return wrong;
    for (const auto& p : s.products)
        if (p.status == approval::approved &&
            std::none_of(spec.products.begin(), spec.products.end(), [&](const product_grant& g) {
                return g.name == p.name && g.status == approval::approved;
            }))
            return "product " + p.name + " is approved on the successor, not on the old key";
    if (sorted(s.scopes) != sorted(spec.scopes)) return "the scopes differ from the old key's";
    return std::nullopt;
}

std::optional<std::string> check_after(const step& st, const credential& answer,
                                       const successor_spec& spec) {
    switch (st.kind) {
        case step_kind::add_products_final:
        case step_kind::add_products:
            if (st.kind == step_kind::add_products_final &&
                sorted(answer.attributes) != sorted(spec.attributes))
                return "attributes do not read back as written";
            if (st.kind == step_kind::add_products && !keeps_marker(answer))
                return "the lineage marker does not read back after adding products";
            for (const auto& p : st.products)
                if (find_product(answer, p) == nullptr)
                    return "product " + p + " missing after adding it";
            return std::nullopt;
        case step_kind::set_product_status:
            return std::nullopt;  // 204, no key: verify_statuses reads it
        case step_kind::verify_statuses:
            return statuses_wrong(answer, spec);
        case step_kind::set_scopes:
            if (sorted(answer.scopes) != sorted(st.scopes)) return "scopes do not read back as set";
            if (!keeps_marker(answer))
                return "the lineage marker does not read back after setting scopes";
            return std::nullopt;
        case step_kind::final_marker:
            if (sorted(answer.attributes) != sorted(spec.attributes))
                return "attributes do not read back as written";
            return std::nullopt;
        case step_kind::create_pending:
            if (!marked_pending(answer, st.replaces) || answer.status != approval::approved)
                return "created key does not read back as a pending successor";
            return std::nullopt;
        case step_kind::create_bare:
            if (answer.status != approval::approved || !answer.products.empty())
                return "created key does not read back as a new approved key without products";
            return std::nullopt;
        case step_kind::generate:
            if (keeps_marker(answer)) return "the generated key already carries a lineage marker";
            return std::nullopt;
        case step_kind::mark_pending:
            if (!marked_pending(answer, st.replaces))
                return "the pending marker does not read back as written";
            return std::nullopt;
        case step_kind::revoke:
            if (answer.status != approval::revoked) return "the key does not read back revoked";
            return std::nullopt;
        case step_kind::remove:
            return "the key is still there";
    }
    return "unknown step";
}

std::optional<std::string> check_after(const step& st, const credential& answer) {
    static const successor_spec none;
    return check_after(st, answer, none);
}

}  // namespace keyrot::plan
