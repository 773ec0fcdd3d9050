// Progressive enhancement only: every form works without this script.
(function () {
  'use strict';
  var body = document.body;
  function cookie(name) {
    var parts = document.cookie ? document.cookie.split('; ') : [];
    for (var i = 0; i < parts.length; i++) {
      if (parts[i].indexOf(name + '=') === 0) return decodeURIComponent(parts[i].slice(name.length + 1));
    }
    return '';
  }
  // Button clicks go to the same beacon the original frontend used.
  function beacon(buttonID) {
    if (body.getAttribute('data-log-events') !== 'true') return;
    var q = new URLSearchParams({
      client_event_id: body.getAttribute('data-client-event-id') || 'null',
      anonymous_id: cookie('anonymousclientevent'),
      button_id: buttonID,
      url: location.href
    });
    var u = '/clientevent/buttonclick?' + q.toString();
    // A GET: the beacon records only GETs, which need no CSRF token.
    fetch(u, {credentials: 'same-origin', keepalive: true}).catch(function () {});
  }
  document.addEventListener('click', function (e) {
    var el = e.target.closest('[data-track]');
    if (el) beacon(el.getAttribute('data-track'));
  });
  // Quantity and shipping forms send themselves when a value changes.
  document.querySelectorAll('form[data-autosubmit]').forEach(function (f) {
    f.addEventListener('change', function () { if (f.reportValidity()) f.requestSubmit ? f.requestSubmit() : f.submit(); });
  });
  // The cookie notice closes in place.
  var notice = document.getElementById('cookie-notice');
  if (notice) {
    notice.querySelector('form').addEventListener('submit', function (e) {
      e.preventDefault();
      document.cookie = 'termsofserviceagreed=true; path=/; max-age=31536000; samesite=lax';
      notice.hidden = true;
    });
  }
})();
