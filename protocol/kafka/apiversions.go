package kafka

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ApiVersions (key 18), versions 0-3: the keys and versions served. A
// version above 3 is answered at version 0 with UNSUPPORTED_VERSION (see
// conn.unsupported), so the client retries lower.
func handleApiVersions(c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	resp := c.apiVersions()
	resp.SetVersion(kreq.GetVersion())
	return resp, nil
}

// apiVersions lists the served keys, in key order.
func (c *conn) apiVersions() *kmsg.ApiVersionsResponse {
	resp := kmsg.NewPtrApiVersionsResponse()
	keys := make([]int16, 0, len(c.apis))
	for k := range c.apis {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		a := c.apis[k]
		v := kmsg.NewApiVersionsResponseApiKey()
		v.ApiKey, v.MinVersion, v.MaxVersion = k, a.min, a.max
		resp.ApiKeys = append(resp.ApiKeys, v)
	}
	return resp
}
