-- Argo CD health check for ecsrun.dev/EcsTaskRun. In argocd-cm:
--   resource.customizations.health.ecsrun.dev_EcsTaskRun: |
--     <this file>
-- A run is Healthy once it succeeded, Degraded once it failed or its outcome cannot be known, Suspended
-- while spec.suspend holds it (nothing running), and Progressing otherwise (no status yet, Pending,
-- Running, Stopping). Argo CD gives health scripts no string library, so this uses none. hack/test runs it with gopher-lua, as Argo CD does, against runs
-- the controller took through each phase.
local health = { status = "Progressing", message = "Waiting for the controller" }
if obj.status == nil or obj.status.phase == nil then
  return health
end
if obj.status.message ~= nil then
  health.message = obj.status.message
end
if obj.status.phase == "Succeeded" then
  health.status = "Healthy"
elseif obj.status.phase == "Failed" or obj.status.phase == "Unknown" then
  health.status = "Degraded"
elseif obj.status.phase == "Pending" and obj.status.reason == "Suspended" then
  health.status = "Suspended"
end
return health
