package kafka

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeConfigs (key 32), versions 0-4: a topic's configs (those
// CreateTopics understands, with the topic's values, and the read-only
// ones that say how Ferry works: cleanup.policy=delete, ...), or this
// broker's (read-only: Ferry is configured by its flags, environment and
// file). As in Kafka, a broker named by the empty string has only its
// dynamic configs, of which Ferry has none. Config names asked for that
// are not known are left out.
func handleDescribeConfigs(c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DescribeConfigsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	for _, rr := range req.Resources {
		r := kmsg.NewDescribeConfigsResponseResource()
		r.ResourceType, r.ResourceName = rr.ResourceType, rr.ResourceName
		var entries []configEntry
		set := kmsg.ConfigSourceDynamicTopicConfig
		var err error
		code := int16(0)
		switch rr.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			ti, terr := c.s.b.DescribeTopic(rr.ResourceName)
			if terr != nil {
				code, err = errorCode(terr), terr
				break
			}
			entries = topicConfigEntries(ti.Config)
		case kmsg.ConfigResourceTypeBroker:
			set = kmsg.ConfigSourceStaticBrokerConfig
			switch rr.ResourceName {
			case "":
			case strconv.Itoa(nodeID):
				entries = c.s.brokerConfigEntries()
			default:
				code, err = kerr.InvalidRequest.Code, fmt.Errorf("broker %q: this is broker %d", rr.ResourceName, nodeID)
			}
		default:
			code, err = kerr.InvalidRequest.Code, fmt.Errorf("resource type %v: Ferry describes the configs of topics and of its broker", rr.ResourceType)
		}
		if err != nil {
			r.ErrorCode, r.ErrorMessage = code, kmsg.StringPtr(err.Error())
			resp.Resources = append(resp.Resources, r)
			continue
		}
		for _, e := range entries {
			if rr.ConfigNames != nil && !slices.Contains(rr.ConfigNames, e.name) {
				continue
			}
			rc := kmsg.NewDescribeConfigsResponseResourceConfig()
			rc.Name, rc.Value, rc.ReadOnly, rc.IsDefault = e.name, kmsg.StringPtr(e.value), e.readOnly, e.isDefault
			rc.Source = e.source(set)
			rc.ConfigType = e.typ
			if req.IncludeSynonyms {
				syn := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
				syn.Name, syn.Value, syn.Source = e.name, rc.Value, rc.Source
				rc.ConfigSynonyms = []kmsg.DescribeConfigsResponseResourceConfigConfigSynonym{syn}
			}
			if req.IncludeDocumentation {
				rc.Documentation = kmsg.StringPtr(e.doc)
			}
			r.Configs = append(r.Configs, rc)
		}
		resp.Resources = append(resp.Resources, r)
	}
	return resp, nil
}
