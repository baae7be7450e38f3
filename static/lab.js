// The lab page: run buttons type a step's command into the terminal, Check
// buttons ask the server whether the step is done, and on load the steps that
// already passed (the server remembers them) are shown as passed.
//
// Without a session (no terminal yet) the buttons explain that the lab must be
// started first; without JavaScript the commands and hints are still readable
// and can be typed by hand.

const lab = document.getElementById('lab');
const sessionId = lab.dataset.sessionId || null;

// terminal.js opens the WebSocket as soon as it loads, so it is only loaded
// when the page has a terminal.
const terminal = sessionId ? import('./terminal.js') : null;
// The "What the kernel did" panel exists only beside a terminal too.
if (sessionId && document.getElementById('pictures')) import('./pictures.js');

function setState(stepEl, state, text) {
  const status = stepEl.querySelector('.step-status');
  if (!status) return;
  status.dataset.state = state;
  status.textContent = text;
  // The step itself says whether it passed, for the eye (a green edge) and for tests.
  stepEl.classList.toggle('passed', state === 'passed');
  stepEl.dataset.passed = String(state === 'passed');
}

// Progress is stored with the session: after a reload, or from another tab,
// the steps passed so far are still shown as passed.
async function showProgress() {
  try {
    const response = await fetch(`/api/v1/sessions/${encodeURIComponent(sessionId)}`, {
      credentials: 'same-origin',
      cache: 'no-store',
    });
    if (!response.ok) return;
    const session = await response.json();
    for (const n of session.passed_steps || []) {
      const stepEl = document.getElementById(`step-${n}`);
      // A check running now decides for itself.
      if (stepEl && stepEl.querySelector('.step-status')?.dataset.state === 'pending') {
        setState(stepEl, 'passed', 'Passed (checked earlier).');
      }
    }
  } catch {
    // Without the stored progress the steps simply start unchecked.
  }
}

async function runCommand(button) {
  const stepEl = button.closest('.step');
  const code = button.closest('.code-block')?.querySelector('code');
  if (!stepEl || !code) return;
  if (!terminal) {
    setState(stepEl, 'pending', 'Start the lab (button at the top) to get a terminal to run this in.');
    return;
  }
  const { sendInput } = await terminal;
  // Each line is typed as a line: Enter sends a carriage return, as a keyboard does.
  const sent = sendInput(`${code.textContent.replace(/\n/g, '\r')}\r`);
  if (!sent) setState(stepEl, 'failed', 'The terminal is not connected: wait a moment and try again.');
}

async function checkStep(button) {
  const stepEl = button.closest('.step');
  const number = button.dataset.step;
  if (!stepEl || !sessionId) return;
  button.disabled = true;
  setState(stepEl, 'checking', 'Checking…');
  try {
    const url = `/api/v1/sessions/${encodeURIComponent(sessionId)}/steps/${encodeURIComponent(number)}/check`;
    const response = await fetch(url, { method: 'POST', credentials: 'same-origin' });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      setState(stepEl, 'failed', body.error || `The check could not run (HTTP ${response.status}).`);
    } else if (body.passed) {
      setState(stepEl, 'passed', body.message || 'Done.');
    } else {
      setState(stepEl, 'failed', body.message || 'Not yet.');
    }
  } catch (error) {
    setState(stepEl, 'failed', `The check could not reach the server: ${error.message}`);
  } finally {
    button.disabled = false;
  }
}

lab.addEventListener('click', (event) => {
  const run = event.target.closest('button.run-code');
  if (run) {
    runCommand(run);
    return;
  }
  const check = event.target.closest('button.check-step');
  if (check) checkStep(check);
});

if (sessionId) showProgress();
