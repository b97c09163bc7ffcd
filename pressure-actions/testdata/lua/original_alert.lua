-- A script written for the original pressured (C), in the style of its README's Helm example
-- (github.com/ruiyangke/pressured, README "Complete Helm Values Example"): it must keep working.
-- Differences from that example: the port and path come from the pod's annotations, so the test can
-- point it at a server on an ephemeral port.
function on_event(event, ctx)
  if event.severity == "critical" then
    log.error(string.format("CRITICAL: %s/%s at %.0f%%",
      event.namespace, event.pod_name, event.usage_percent))

    local enabled = event.annotations and event.annotations["pressured.io/pprof-enabled"]
    if event.pod_ip and enabled == "true" then
      local port = event.annotations["pressured.io/pprof-port"] or "6060"
      local path = event.annotations["pressured.io/pprof-path"] or "/debug/pprof/heap"
      local pprof_url = "http://" .. event.pod_ip .. ":" .. port .. path
      local resp = http.fetch(pprof_url, {
        method = "GET",
        timeout_ms = 5000
      })
      if resp.status == 200 then
        storage.write(event.pod_name .. "/heap-" .. os.time() .. ".pb.gz", resp.body)
      else
        log.warn("pprof fetch failed: " .. tostring(resp.error or resp.status))
      end
    end
  end
  return "ok"
end
