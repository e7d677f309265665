# The Grafana dashboard's queries against a real Prometheus scraping a real
# keyrotd (with the emulator's demo org). Skips (77) without /usr/bin/prometheus.
add_test(NAME deploy.grafana_prometheus
         COMMAND ${KEYROT_PYTHON} ${PROJECT_SOURCE_DIR}/tests/deploy/grafana_prometheus_test.py
                 ${CMAKE_BINARY_DIR})
set_tests_properties(deploy.grafana_prometheus PROPERTIES LABELS integration TIMEOUT 240
                                                          SKIP_RETURN_CODE 77)

# Install rules (top-level CMakeLists.txt, "Install layout"): `cmake --install`
# with DESTDIR + --prefix /usr, and with another --prefix; offline.
add_test(NAME deploy.install
         COMMAND bash ${PROJECT_SOURCE_DIR}/tests/deploy/install_test.sh ${CMAKE_BINARY_DIR})
set_tests_properties(deploy.install PROPERTIES LABELS deploy TIMEOUT 120)
