// ECharts with only what the console draws (tree-shaken).
import { BarChart, HeatmapChart, LineChart } from "echarts/charts";
import { CalendarComponent, GridComponent, LegendComponent, TooltipComponent } from "echarts/components";
import * as echarts from "echarts/core";
import { CanvasRenderer } from "echarts/renderers";

echarts.use([LineChart, BarChart, GridComponent, TooltipComponent, LegendComponent, CanvasRenderer]);
// the environment page's AQI calendar
echarts.use([HeatmapChart, CalendarComponent]);

export { echarts };
