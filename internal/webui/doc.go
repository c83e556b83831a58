// Package webui holds only tests: they check what a person sees and does in the Temporal Web
// UI when drflow runs, by driving a real headless Chromium (through chromedriver) against a
// real Temporal dev server with its UI. A restore drill must be findable in the workflow list
// by drflow's search attributes, and its page must show the measured RPO and RTO. A runbook's
// approval gate must be answerable from the workflow page's Update form, which shows the
// validator's refusal of a vote that may not count. With the payload codec on, a drill's input
// and result must be readable on its page through the codec server, and sealed without it.
// Screenshots are kept in
// $DRFLOW_SCREENSHOT_DIR when it is set.
package webui
