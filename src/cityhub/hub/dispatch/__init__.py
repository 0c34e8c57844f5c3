"""The one case workflow every department uses: case types as explicit state machines, category
code tables, grid cells, routing to the responsible department (属地管理 as the fallback), time
limits on a working-hours calendar, overdue escalation, attachments, comments, full history and the
department evaluation. Cases are NGSI-LD ``CityCase`` entities too."""
