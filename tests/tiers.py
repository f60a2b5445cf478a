"""Which tier each test is in: markers applied at collection (conftest.py), by name.

- ``unit``: no server, no process — the core, the stores, config, keys, pure helpers.
- ``e2e``: drives a real gateway over loopback HTTP/WebSocket, a gateway process or
  the CLI (every module not listed as unit).
- ``slow``: costs seconds on its own — several processes, kill -9 and restarts, a
  browser, pip, the benchmarks, hypothesis over a live server.

``pytest -m "not slow"`` is the fast tier (about 90 s on two idle cores) and keeps
at least one test of every module (but test_lifecycle_gateways.py: gateway processes
racing, tens of seconds each); ``scripts/test.sh`` (README, ``.ci/run``) runs every
tier. Lists, not decorators or folders, so a test changes tier without moving or
touching its file. A test that takes over a second or so on an idle machine goes in
`SLOW_TESTS` (``module.py::name``, or ``module.py::name[param]`` for one case).
"""

from __future__ import annotations

import pytest

UNIT_MODULES = frozenset({
    "test_architecture.py", "test_config.py", "test_config_scale.py", "test_deploy.py",
    "test_import_boundaries.py", "test_keys.py", "test_public_api.py", "test_resolver.py",
    "test_resolver_properties.py", "test_run_ids.py", "test_store_conformance.py",
    "test_store_coordination.py", "test_store_runs.py", "test_store_schema.py",
})  # fmt: skip

# every test of these modules is slow, except those named in FAST_IN_SLOW_MODULES
SLOW_MODULES = frozenset({
    "test_benchmarks_smoke.py", "test_install.py", "test_lifecycle_gateways.py",
    "test_multiprocess.py", "test_operations.py", "test_store_faults.py", "test_ui_browser.py",
})  # fmt: skip
FAST_IN_SLOW_MODULES = frozenset({
    "test_install.py::test_the_wheel_ships_every_template_and_asset",
    "test_install.py::test_the_lower_bounds_file_matches_pyproject",
    "test_multiprocess.py::test_an_unreachable_database_fails_fast_and_recovers",
    "test_operations.py::test_serve_rejects_a_port_outside_1_to_65535_before_printing",
    "test_operations.py::test_config_validate_names_the_file_it_read",
    "test_operations.py::test_an_invalid_key_error_numbers_segments_like_its_details",
    "test_operations.py::test_a_one_line_config_error_has_no_stray_hint",
    "test_store_faults.py::test_text_a_backend_cannot_store_is_refused_alike",
    "test_store_faults.py::test_numbers_beyond_64_bits_are_contained",
    "test_ui_browser.py::test_sign_in_refuses_a_wrong_token_and_sets_a_strict_cookie",
    "test_benchmarks_smoke.py::test_openclaw_protocol_benchmark_smoke_run",
})  # fmt: skip

SLOW_TESTS = frozenset({
    "test_lifecycle.py::test_the_cli_refuses_an_overlong_reason_in_one_line",
    "test_lifecycle.py::test_the_cli_checks_a_created_sessions_label_as_the_wire_does",
    "test_lifecycle.py::test_the_cli_shows_a_labels_escape_sequences_visibly",
    "test_lifecycle.py::test_the_cli_deletes_resets_and_prunes",
    "test_words_cli.py::test_doctor_lists_phantoms_newest_first",
    "test_resolver.py::test_audit_rotation_keeps_backups",
    "test_runtimes.py::test_a_run_that_outlives_the_wait_times_out_and_continues",
    "test_runtimes.py::test_the_periodic_sweep_leaves_this_process_runs_alone",
    "test_cli.py::test_sessions_list_and_show_read_the_configured_store",
    "test_cli.py::test_demo_replays_both_modes",
    "test_client_and_serve.py::test_serve_generates_a_private_token_and_stops_on_sigterm",
    "test_client_and_serve.py::test_serve_on_a_busy_port_fails_readably",
    "test_client_and_serve.py::test_serve_with_an_unreachable_store_fails_readably",
    "test_client_and_serve.py::test_serve_refuses_a_public_bind_without_a_token",
    "test_entry_points.py::test_each_probe_creates_only_what_its_intent_allows[true]",
    "test_entry_points.py::test_each_probe_creates_only_what_its_intent_allows[warn]",
    "test_fail_closed.py::test_doctor_finds_and_repairs_a_phantom_without_losing_anything",
    "test_fail_closed.py::test_the_documented_rollout_path_on_the_embedded_default",
    "test_fail_closed.py::test_sessions_create_records_origin_cli",
    "test_fail_closed.py::test_doctor_merges_a_split_brain_that_no_lint_explains",
    "test_fail_closed.py::test_audit_tail_prints_warned_and_refused_addresses",
    "test_fuzz.py::test_fuzzed_http_requests_never_fail_the_gateway",
    "test_fuzz.py::test_fuzzed_a2a_requests_answer_structured_errors",
    "test_hostile.py::test_serve_refuses_a_state_folder_others_can_write_or_a_symlinked_token",
    "test_hostile.py::test_an_import_reports_and_skips_what_the_store_could_not_read_back",
    "test_hostile.py::test_with_json_logs_every_stderr_line_is_json_even_for_garbage",
    "test_tracing.py::test_a_served_gateway_exports_over_otlp_and_logs_the_trace_id",
    "test_mcp.py::test_stdio_refuses_to_start_with_one_line_on_stderr",
    "test_mcp.py::test_stdio_without_a_gateway_exits_1_and_keeps_stdout_clean",
    "test_mcp.py::test_tools_send_refusal_and_transcript[stdio]",
    "test_openclaw_import.py::test_fixture_into_postgres_imports_once_and_doctor_repairs_the_four_phantoms",
    "test_openclaw_import.py::test_fixture_into_sqlite_imports_once_and_doctor_repairs_the_four_phantoms",
    "test_openclaw_import.py::test_a_phantom_an_operator_made_shows_its_channel_and_first_message",
    "test_openclaw_import.py::test_damaged_transcripts_are_reported_by_path_and_line_and_skipped",
    "test_openclaw_import.py::test_messages_join_a_session_sessiongate_already_has",
    "test_openclaw_import.py::test_text_a_store_cannot_hold_skips_that_session_only",
    "test_openclaw_import.py::test_an_agent_missing_from_the_config_is_skipped_with_a_hint",
    "test_openclaw_import.py::test_import_benchmark_runs",
    "test_openclaw_ws.py::test_a_repeat_after_a_restart_returns_the_stored_run[postgres]",
    "test_policy_facts.py::test_every_report_says_what_the_resolver_does",
    "test_resolver_properties.py::test_strict_never_creates_and_only_raises_gateway_errors",
    "test_runtimes.py::test_llm_agent_reads_suggestions_and_retries_to_the_main_session",
    "test_store_operator.py::test_migrate_refuses_a_source_a_gateway_serves_unless_forced",
    "test_store_operator.py::test_migrate_explains_three_and_four_slashes",
    "test_store_operator.py::test_migrate_refuses_a_missing_source_and_creates_nothing",
    "test_surfaces.py::test_llm_tool_calls_obey_the_allow_list",
    "test_words.py::test_repair_keeps_time_and_the_phantom_keeps_its_own_transcript",
    "test_words.py::test_invalid_keys_and_unknown_agents_are_audited_with_their_suggestions",
    "test_words_cli.py::test_config_and_port_pick_among_gateways_of_one_config_and_stop_is_honest",
    "test_words_cli.py::test_a_second_start_on_a_busy_port_prints_its_own_error_only",
    "test_words_cli.py::test_sessions_list_is_newest_first_and_never_wraps_a_key",
    "test_words_cli.py::test_the_documented_rollout_edits_an_init_config_without_overwriting_it",
    "test_words_page.py::test_the_audit_view_stacks_its_rows_on_a_phone",
    "test_lifecycle_race.py::test_postgres_two_processes_no_resurrection",
})  # fmt: skip


def _is_slow(module: str, name: str) -> bool:
    test = f"{module}::{name.split('[')[0]}"
    if module in SLOW_MODULES:
        return test not in FAST_IN_SLOW_MODULES
    return test in SLOW_TESTS or f"{module}::{name}" in SLOW_TESTS


def apply_tiers(items: list[pytest.Item]) -> None:
    """Mark each collected test unit or e2e, and slow where listed."""
    for item in items:
        module = item.path.name
        item.add_marker(pytest.mark.unit if module in UNIT_MODULES else pytest.mark.e2e)
        if _is_slow(module, item.name):
            item.add_marker(pytest.mark.slow)
