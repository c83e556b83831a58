// Package webui holds only tests: they check what a person sees in the Temporal Web UI when
// drflow runs, by driving a real headless Chromium (through chromedriver) against a real
// Temporal dev server with its UI, after a real backup and restore drill. A restore drill must
// be findable in the workflow list by drflow's search attributes, and its page must show the
// measured RPO and RTO. Screenshots are kept in $DRFLOW_SCREENSHOT_DIR when it is set.
package webui
