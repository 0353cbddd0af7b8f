// Reload the page every data-refresh seconds, but not while the operator
// is typing into one of its forms.
(function () {
  var every = (parseInt(document.body.getAttribute("data-refresh"), 10) || 10) * 1000;
  function typing() {
    var a = document.activeElement;
    if (a && /^(INPUT|TEXTAREA|SELECT)$/.test(a.tagName)) return true;
    var fields = document.querySelectorAll("input, textarea");
    for (var i = 0; i < fields.length; i++) {
      if (fields[i].type !== "hidden" && fields[i].value !== fields[i].defaultValue) return true;
    }
    return false;
  }
  setInterval(function () { if (!typing()) location.reload(); }, every);
})();
