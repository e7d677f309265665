# Deployment artefacts (systemd/, deploy/): offline checks, label "deploy".
# Each skips (exit 77) only when its tool is not installed; tests/run.sh
# installs them all (prometheus brings promtool; kubectl and systemd-analyze
# are on the image).
set(KEYROT_DEPLOY_TESTS ${CMAKE_CURRENT_SOURCE_DIR}/deploy)
set(KEYROT_DEPLOY_ROOT ${PROJECT_SOURCE_DIR})

# The built daemon, when this build has it: systemd-analyze verify runs on a
# unit pointing at it, and ldd checks the Dockerfile's runtime packages.
if(TARGET keyrotd)
    set(KEYROT_DEPLOY_BINARY $<TARGET_FILE:keyrotd>)
else()
    set(KEYROT_DEPLOY_BINARY "")
endif()

add_test(NAME deploy.systemd_unit
         COMMAND bash ${KEYROT_DEPLOY_TESTS}/systemd_test.sh ${KEYROT_DEPLOY_BINARY})
add_test(NAME deploy.kustomize
         COMMAND ${KEYROT_PYTHON} ${KEYROT_DEPLOY_TESTS}/kustomize_test.py)
add_test(NAME deploy.prometheus_rules_check
         COMMAND bash -c "command -v promtool >/dev/null || { echo 'SKIP: promtool not installed'; exit 77; }; exec promtool check rules \"$0\""
                 ${KEYROT_DEPLOY_ROOT}/deploy/prometheus/keyrotd-rules.yaml)
add_test(NAME deploy.prometheus_rules_unit
         COMMAND bash -c "command -v promtool >/dev/null || { echo 'SKIP: promtool not installed'; exit 77; }; exec promtool test rules \"$0\""
                 ${KEYROT_DEPLOY_TESTS}/keyrotd-rules.test.yaml)
add_test(NAME deploy.grafana_dashboard
         COMMAND ${KEYROT_PYTHON} ${KEYROT_DEPLOY_TESTS}/grafana_exprs.py --check)
add_test(NAME deploy.dockerfile
         COMMAND ${KEYROT_PYTHON} ${KEYROT_DEPLOY_TESTS}/dockerfile_test.py ${KEYROT_DEPLOY_BINARY})

set_tests_properties(
    deploy.systemd_unit deploy.kustomize deploy.prometheus_rules_check
    deploy.prometheus_rules_unit deploy.grafana_dashboard deploy.dockerfile
    PROPERTIES LABELS deploy SKIP_RETURN_CODE 77 TIMEOUT 120)
