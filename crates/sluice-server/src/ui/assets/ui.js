// Sluice web UI: the only script (served by the binary; the CSP allows nothing inline).
// 1. A category is disabled only after its name is typed: the button waits for it (the server
//    checks it too).
// 2. A model page follows a running sync: it polls the model's progress and reloads when the
//    run ends.
// 3. The debugger reloads itself while "Follow live" is on.
'use strict'

document.addEventListener('DOMContentLoaded', () => {
  for (const form of document.querySelectorAll('form[data-confirm-name]')) {
    const input = form.querySelector('input[name="confirm"]')
    const button = form.querySelector('button[type="submit"]')
    if (!input || !button) continue
    const check = () => { button.disabled = input.value.trim() !== form.dataset.confirmName }
    input.addEventListener('input', check)
    check()
  }

  const progress = document.getElementById('progress')
  if (progress && progress.dataset.progressUrl) {
    const lastRun = Number(progress.dataset.lastRun || 0)
    let wasRunning = progress.dataset.running === 'true'
    let polls = 0
    const poll = async () => {
      polls += 1
      try {
        const res = await fetch(progress.dataset.progressUrl, { headers: { Accept: 'application/json' }, credentials: 'same-origin' })
        if (!res.ok || !(res.headers.get('content-type') || '').includes('json')) return
        const p = await res.json()
        if (p.running) {
          wasRunning = true
          progress.textContent = p.rows_read == null
            ? 'A sync is running…'
            : `A sync is running: ${p.rows_read} rows read so far…`
        } else if (wasRunning || p.run_id !== lastRun) {
          progress.textContent = 'The sync finished; loading its delivery overview…'
          window.location.reload()
          return
        }
      } catch (e) {
        // the server went away for a moment: try again at the next tick
      }
      // follow a sync for up to an hour; a page left open stops asking after that
      if (polls < 3600) window.setTimeout(poll, wasRunning ? 1000 : 2000)
    }
    window.setTimeout(poll, 500)
  }

  if (document.getElementById('live')) {
    window.setTimeout(() => window.location.reload(), 3000)
  }
})
