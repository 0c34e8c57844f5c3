"""The rule engine and alerts: rules over entity changes (conditions, duration windows, rate of
change, absence, geo-fences), per tenant; alerts with their lifecycle, escalation, suppression and
channels (webhook, MQTT, e-mail, in-app); alerts are NGSI-LD ``Alert`` entities too."""
