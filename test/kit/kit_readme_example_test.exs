# The README's example test module (section "Testing code that uses a store"), compiled from the
# README itself so that the two cannot drift apart, with the application code it tests.

defmodule MyApp.Export do
  @moduledoc false
  # One CSV report per day, as the example expects.
  def run(store, from, to) do
    Enum.each(Date.range(from, to), fn day ->
      :ok = ObjectStoreX.put(store, "reports/#{day}.csv", "date,total\n#{day},0\n")
    end)
  end
end

readme = File.read!(Path.expand("../../README.md", __DIR__))

[example] =
  Regex.run(~r/```elixir\n(defmodule MyApp\.ExportTest do\n.*?\nend\n)```/s, readme,
    capture: :all_but_first
  )

Code.compile_string(example, "README.md")
