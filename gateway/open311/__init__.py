"""Open311 GeoReport v2 for whistleloop: the duty list as services, cases as service requests.

`services` builds the service list and definitions, `service_requests` reads cases as requests,
`intake` turns a POSTed request into a report, `render` writes either format and the spec's errors;
`gateway.routers.open311` serves them under `/open311/v2`.
"""
