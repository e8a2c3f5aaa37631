defmodule Mix.Tasks.Objectstorex.Sign do
  @shortdoc "Prints a presigned URL for an object"

  @moduledoc """
  Prints a presigned URL that lets whoever holds it read (or write) one object, without
  credentials, until it expires.

      mix objectstorex.sign [OPTIONS] URL
      curl "$(mix objectstorex.sign s3://bucket/report.pdf --expires 600)" -o report.pdf

  Signing is local (no request is sent) and works for `s3://`, `gs://` and Azure URLs
  (`az://`, `abfs://`); other stores have no presigned URLs and give an error. On GCS without a
  private key, signing asks Google's signing service.

  ## Options

    * `--expires SECONDS` - how long the URL stays valid, default 3600
    * `--method METHOD` - `get` (default), `put`, `delete` or `head`

  The URL is printed on standard output and nothing else is. It carries a signature, not the
  secret key, though with temporary credentials it includes the session token, as presigned
  URLs must. Credentials come from the environment, as for `mix objectstorex.cp`.
  """

  use Mix.Task

  alias ObjectStoreX.CLI

  @task "objectstorex.sign"
  @switches [expires: :integer, method: :string]
  @methods %{"get" => :get, "put" => :put, "delete" => :delete, "head" => :head}

  @impl Mix.Task
  def run(args) do
    # Runnable again in the same session: `mix do objectstorex.cp a b, objectstorex.cp b c`.
    Mix.Task.reenable(@task)
    {opts, argv} = CLI.parse!(@task, args, @switches)

    loc = CLI.one_location!(@task, argv)

    expires = CLI.positive!(@task, opts, :expires) || 3600
    method = method!(opts[:method] || "get")
    key = CLI.Location.prefix(loc)

    if key == nil or CLI.Location.dir?(loc),
      do: CLI.fail!(@task, "#{CLI.Location.display(loc)} names a prefix, not an object")

    store = CLI.open!(@task, loc)

    case ObjectStoreX.sign_url(store, method, key, expires) do
      {:ok, url} -> IO.puts(url)
      {:error, error} -> CLI.error!(@task, "#{CLI.Location.display(loc)}: #{error.message}")
    end
  end

  defp method!(name) do
    case Map.fetch(@methods, String.downcase(name)) do
      {:ok, method} ->
        method

      :error ->
        CLI.fail!(@task, "--method must be one of get, put, delete, head, got: #{name}")
    end
  end
end
